/* vixdisklib_api — the parts of VMware's VixDiskLib C API that vbak calls, declared from VMware's
 * VDDK documentation (VDDK 7 programming guide and API reference): types, error codes, flags and
 * the signatures of the functions disk_vddk.c looks up with dlsym. The fake library under
 * tests/fakevddk implements the same declarations.
 *
 * Nothing here links against VDDK: the real library is loaded at run time, on proxies that have it.
 */
#ifndef VB_VIXDISKLIB_API_H
#define VB_VIXDISKLIB_API_H

#include <stdarg.h>
#include <stdint.h>

typedef uint64_t VixError;
typedef char Bool; /* VMware's Bool is a char */
#define VIX_ERROR_CODE(err) ((err)&0xFFFF)

enum {
    VIX_OK = 0,
    VIX_E_FAIL = 1,
    VIX_E_OUT_OF_MEMORY = 2,
    VIX_E_INVALID_ARG = 3,
    VIX_E_FILE_NOT_FOUND = 4,
    VIX_E_OBJECT_IS_BUSY = 5,
    VIX_E_NOT_SUPPORTED = 6,
    VIX_E_FILE_ERROR = 7,
    VIX_E_FILE_READ_ONLY = 11,
    VIX_E_FILE_ACCESS_ERROR = 13,
    VIX_E_HOST_SERVER_NOT_FOUND = 14008,
    VIX_E_HOST_NETWORK_CONN_REFUSED = 14009,
    VIX_E_DISK_INVAL = 16000,
    VIX_E_DISK_NOINIT = 16001,
    VIX_E_DISK_OUTOFRANGE = 16007,
    VIX_E_CANNOT_CONNECT_TO_HOST = 18000,
    VIX_E_NET_HTTP_SSL_SECURITY = 30201,
};

typedef uint64_t VixDiskLibSectorType;
#define VIXDISKLIB_SECTOR_SIZE 512

#define VIXDISKLIB_FLAG_OPEN_UNBUFFERED 0x01u
#define VIXDISKLIB_FLAG_OPEN_SINGLE_LINK 0x02u
#define VIXDISKLIB_FLAG_OPEN_READ_ONLY 0x04u

/* QueryAllocatedBlocks: chunk size in sectors, at least this, and at most this many chunks per
 * call. */
#define VIXDISKLIB_MIN_CHUNK_SIZE 128
#define VIXDISKLIB_MAX_CHUNK_NUMBER (512 * 1024)

#define VIXDISKLIB_VERSION_MAJOR 7
#define VIXDISKLIB_VERSION_MINOR 0

typedef void VixDiskLibGenericLogFunc(const char *fmt, va_list args);

typedef enum {
    VIXDISKLIB_CRED_UID = 1,
    VIXDISKLIB_CRED_SESSIONID = 2,
    VIXDISKLIB_CRED_TICKETID = 3,
    VIXDISKLIB_CRED_SSPI = 4,
    VIXDISKLIB_CRED_UNKNOWN = 256
} VixDiskLibCredType;

typedef enum {
    VIXDISKLIB_SPEC_VMX = 0,
    VIXDISKLIB_SPEC_VSTORAGE_OBJECT = 1,
    VIXDISKLIB_SPEC_UNKNOWN = 2
} VixDiskLibSpecType;

typedef struct {
    char *userName;
    char *password;
} VixDiskLibUidPasswdCreds;

typedef struct {
    char *cookie;
    char *userName;
    char *key;
} VixDiskLibSessionIdCreds;

typedef struct {
    char *id;
    char *datastoreMoRef;
    char *ssId;
} VixDiskLibVStorageObjectSpec;

/* Allocate with VixDiskLib_AllocateConnectParams when the library has it (VDDK ≥ 6.7): the
 * library then owns the layout. */
typedef struct {
    char *vmxSpec;    /* "moref=vm-42" */
    char *serverName; /* vCenter or ESXi; NULL for local files */
    char *thumbPrint; /* SHA-1/SHA-256 thumbprint of the server certificate */
    long privateUse;
    VixDiskLibCredType credType;
    union {
        VixDiskLibUidPasswdCreds uid;
        VixDiskLibSessionIdCreds sessionId;
        void *ticketId;
    } creds;
    uint32_t port;
    uint32_t nfcHostPort;
    char *vimApiVer;
    char reserved[8];
    void *reserved2;
    VixDiskLibSpecType specType;
    union {
        VixDiskLibVStorageObjectSpec vStorageObjSpec;
    } spec;
} VixDiskLibConnectParams;

typedef struct VixDiskLibConnectParam *VixDiskLibConnection;
typedef struct VixDiskLibHandleStruct *VixDiskLibHandle;

typedef struct {
    uint32_t cylinders;
    uint32_t heads;
    uint32_t sectors;
} VixDiskLibGeometry;

typedef struct {
    VixDiskLibGeometry biosGeo;
    VixDiskLibGeometry physGeo;
    VixDiskLibSectorType capacity; /* sectors */
    int adapterType;
    int numLinks;
    char *parentFileNameHint;
    char *uuid;
} VixDiskLibInfo;

typedef struct {
    VixDiskLibSectorType offset; /* sectors */
    VixDiskLibSectorType length;
} VixDiskLibBlock;

typedef struct {
    uint32_t numBlocks;
    VixDiskLibBlock blocks[1];
} VixDiskLibBlockList;

/* The functions, as pointer types for dlsym. */
typedef VixError (*VixDiskLib_InitEx_fn)(uint32_t majorVersion, uint32_t minorVersion,
                                         VixDiskLibGenericLogFunc *log,
                                         VixDiskLibGenericLogFunc *warn,
                                         VixDiskLibGenericLogFunc *panic, const char *libDir,
                                         const char *configFile);
typedef void (*VixDiskLib_Exit_fn)(void);
typedef VixDiskLibConnectParams *(*VixDiskLib_AllocateConnectParams_fn)(void);
typedef void (*VixDiskLib_FreeConnectParams_fn)(VixDiskLibConnectParams *params);
typedef VixError (*VixDiskLib_ConnectEx_fn)(const VixDiskLibConnectParams *connectParams,
                                            Bool readOnly, const char *snapshotRef,
                                            const char *transportModes,
                                            VixDiskLibConnection *connection);
typedef VixError (*VixDiskLib_Disconnect_fn)(VixDiskLibConnection connection);
typedef VixError (*VixDiskLib_Open_fn)(const VixDiskLibConnection connection, const char *path,
                                       uint32_t flags, VixDiskLibHandle *diskHandle);
typedef VixError (*VixDiskLib_Close_fn)(VixDiskLibHandle diskHandle);
typedef VixError (*VixDiskLib_GetInfo_fn)(VixDiskLibHandle diskHandle, VixDiskLibInfo **info);
typedef void (*VixDiskLib_FreeInfo_fn)(VixDiskLibInfo *info);
typedef const char *(*VixDiskLib_GetTransportMode_fn)(VixDiskLibHandle diskHandle);
typedef VixError (*VixDiskLib_QueryAllocatedBlocks_fn)(VixDiskLibHandle diskHandle,
                                                       VixDiskLibSectorType startSector,
                                                       VixDiskLibSectorType numSectors,
                                                       VixDiskLibSectorType chunkSize,
                                                       VixDiskLibBlockList **blockList);
typedef VixError (*VixDiskLib_FreeBlockList_fn)(VixDiskLibBlockList *blockList);
typedef VixError (*VixDiskLib_Read_fn)(VixDiskLibHandle diskHandle,
                                       VixDiskLibSectorType startSector,
                                       VixDiskLibSectorType numSectors, uint8_t *readBuffer);
typedef VixError (*VixDiskLib_Write_fn)(VixDiskLibHandle diskHandle,
                                        VixDiskLibSectorType startSector,
                                        VixDiskLibSectorType numSectors,
                                        const uint8_t *writeBuffer);
typedef VixError (*VixDiskLib_Cleanup_fn)(const VixDiskLibConnectParams *connectParams,
                                          uint32_t *numCleanedUp, uint32_t *numRemaining);
typedef char *(*VixDiskLib_GetErrorText_fn)(VixError err, const char *locale);
typedef void (*VixDiskLib_FreeErrorText_fn)(char *errMsg);

/* The prototypes themselves, for an implementation of the API (the test fake). vbak's own code
 * never links against them: it reaches the real library through dlsym only. */
#ifdef VB_VIXDISKLIB_DECLARE_FUNCTIONS
VixError VixDiskLib_InitEx(uint32_t majorVersion, uint32_t minorVersion,
                           VixDiskLibGenericLogFunc *log, VixDiskLibGenericLogFunc *warn,
                           VixDiskLibGenericLogFunc *panic, const char *libDir,
                           const char *configFile);
void VixDiskLib_Exit(void);
VixDiskLibConnectParams *VixDiskLib_AllocateConnectParams(void);
void VixDiskLib_FreeConnectParams(VixDiskLibConnectParams *params);
VixError VixDiskLib_ConnectEx(const VixDiskLibConnectParams *connectParams, Bool readOnly,
                              const char *snapshotRef, const char *transportModes,
                              VixDiskLibConnection *connection);
VixError VixDiskLib_Disconnect(VixDiskLibConnection connection);
VixError VixDiskLib_Open(const VixDiskLibConnection connection, const char *path, uint32_t flags,
                         VixDiskLibHandle *diskHandle);
VixError VixDiskLib_Close(VixDiskLibHandle diskHandle);
VixError VixDiskLib_GetInfo(VixDiskLibHandle diskHandle, VixDiskLibInfo **info);
void VixDiskLib_FreeInfo(VixDiskLibInfo *info);
const char *VixDiskLib_GetTransportMode(VixDiskLibHandle diskHandle);
VixError VixDiskLib_QueryAllocatedBlocks(VixDiskLibHandle diskHandle,
                                         VixDiskLibSectorType startSector,
                                         VixDiskLibSectorType numSectors,
                                         VixDiskLibSectorType chunkSize,
                                         VixDiskLibBlockList **blockList);
VixError VixDiskLib_FreeBlockList(VixDiskLibBlockList *blockList);
VixError VixDiskLib_Read(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                         VixDiskLibSectorType numSectors, uint8_t *readBuffer);
VixError VixDiskLib_Write(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                          VixDiskLibSectorType numSectors, const uint8_t *writeBuffer);
VixError VixDiskLib_Cleanup(const VixDiskLibConnectParams *connectParams, uint32_t *numCleanedUp,
                            uint32_t *numRemaining);
char *VixDiskLib_GetErrorText(VixError err, const char *locale);
void VixDiskLib_FreeErrorText(char *errMsg);
#endif

#endif
