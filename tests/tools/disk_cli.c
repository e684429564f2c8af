/* disk_cli — runs `vbak disk ...` (vb_cli_disk) until the vbak binary dispatches to it:
 * disk_cli cat URI [--out FILE] ... is `vbak disk cat URI [--out FILE] ...`. */
#include <stdio.h>
#include <string.h>

#include "cli_disk.h"
#include "log.h"

int main(int argc, char **argv)
{
    vb_log_set_level(VB_LOG_LEVEL_WARN);
    argv[0] = (char *)"disk";
    return vb_cli_disk(argc, argv);
}
