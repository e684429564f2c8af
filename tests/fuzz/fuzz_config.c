/* fuzz_config — the configuration files of the coordinator, the agent and the CLI, through the
 * same loader the daemons use (read from a memory file, so the path handling is the real one).
 * The first byte picks the table. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "config.h"
#include "coordinator.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const vb_conf_key_t *table;
    size_t settings_size;
} s_tables[] = {
    {vb_coord_config_table, sizeof(vb_coord_settings_t)},
    {vb_agent_config_table, sizeof(vb_agent_settings_t)},
    {vb_cli_config_table, sizeof(vb_cli_settings_t)},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    size_t which = data[0] % (sizeof s_tables / sizeof s_tables[0]);
    int fd = memfd_create("conf", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data + 1, size - 1) == (ssize_t)(size - 1)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        void *settings = calloc(1, s_tables[which].settings_size);
        if (settings && vb_config_defaults(s_tables[which].table, settings) == 0 &&
            vb_config_load_file(s_tables[which].table, settings, path) == 0)
            (void)vb_config_check_required(s_tables[which].table, settings);
        if (settings)
            vb_config_free(s_tables[which].table, settings);
        free(settings);
    }
    close(fd);
    return 0;
}
