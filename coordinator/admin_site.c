/* Site administration commands of the control socket: remove an agent, rotate the token. */
#include "admin.h"

#include <stdlib.h>

#include <czmq.h>

#include "admin_args.h"
#include "keys.h"
#include "log.h"

int vb_admin_agent_remove(vb_admin_t *self, json_t *args, json_t **result)
{
    const char *name = vb_args_str(args, "name"); /* required, 1 to 255 bytes */
    int rc = vb_registry_remove(self->registry, name, zclock_time());
    if (rc)
        return rc;
    *result = json_pack("{s:s}", "name", name);
    return *result ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

int vb_admin_token_rotate(vb_admin_t *self, json_t *args, json_t **result)
{
    (void)args;
    const char *path = self->enrollment_token_file;
    char *token = NULL;
    if (!path)
        return vb_error_set(VB_EINVAL, "the coordinator has no enrollment_token_file");
    int rc = vb_keys_write_token(path, true);
    if (!rc)
        rc = vb_keys_read_token(path, &token);
    if (!rc)
        rc = vb_registry_set_token(self->registry, token);
    free(token);
    if (rc)
        return vb_error_prefix(rc, "token rotate");
    VB_LOG_INFO("admin", "token_rotated file=%s", path);
    *result = json_pack("{s:s}", "token_file", path);
    return *result ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}
