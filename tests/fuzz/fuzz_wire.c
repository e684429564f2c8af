/* fuzz_wire — the envelope every agent and CLI frame is unpacked with (size limit, protobuf
 * parse, protocol version, known body). */
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vb_envelope_t *env = NULL;
    if (vb_wire_unpack(data, size, VB_WIRE_MAX_FRAME_DEFAULT, &env) == 0) {
        (void)vb_wire_body_name(env);
        vb_wire_free(&env);
    }
    return 0;
}
