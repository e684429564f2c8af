/* fuzz_lab_site — a lab site's site.json, through the lab provider's inventory (the loader, its
 * validation and the inventory built from it), as `vbak lab` and the coordinator read it. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "inventory/inventory.h"
#include "lab/lab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char s_dir[64];

static void s_cleanup(void)
{
    char path[128];
    static const char *const files[] = {"site.json", "site.lock"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", s_dir, files[i]);
        unlink(path);
    }
    rmdir(s_dir);
}

static int s_setup(void)
{
    if (s_dir[0])
        return 0;
    snprintf(s_dir, sizeof s_dir, "/tmp/vbak-fuzz-lab.XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    atexit(s_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (s_setup() < 0 || size > 1 << 20)
        return 0;
    char path[128];
    snprintf(path, sizeof path, "%s/site.json", s_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    ssize_t n = write(fd, data, size);
    close(fd);
    if (n != (ssize_t)size)
        return 0;
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    vb_inventory_t *inv = NULL;
    if (p && p->ops->inventory(p, &inv) == 0)
        vb_inventory_free(&inv);
    vb_provider_destroy(&p);
    return 0;
}
