/* lab_site — drives the lab library for the integration tests:
 *   lab_site create DIR [--proxies N] [--vms N] [--disk-size BYTES] [--seed S]
 *   lab_site up DIR | down DIR | running DIR
 * (the site and its disk servers alone, without the daemons `vbak lab up` also starts; the
 * site's subcommands are `vbak lab show|mutate|...`) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab/lab.h"

static int s_num(const char *text, uint64_t *out)
{
    char *end;
    *out = strtoull(text, &end, 0);
    return (end == text || *end) ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: lab_site create|up|down|running DIR ...\n");
        return 2;
    }
    const char *cmd = argv[1], *dir = argv[2];
    int rc = 0;
    if (strcmp(cmd, "create") == 0) {
        vb_lab_options_t o = {0};
        for (int i = 3; i + 1 < argc; i += 2) {
            uint64_t v;
            if (s_num(argv[i + 1], &v) < 0) {
                fprintf(stderr, "lab_site: bad number %s\n", argv[i + 1]);
                return 2;
            }
            if (strcmp(argv[i], "--proxies") == 0)
                o.proxies = (int)v;
            else if (strcmp(argv[i], "--vms") == 0)
                o.vms = (int)v;
            else if (strcmp(argv[i], "--disk-size") == 0)
                o.disk_size = v;
            else if (strcmp(argv[i], "--seed") == 0)
                o.seed = v;
        }
        rc = vb_lab_site_create(dir, &o);
    } else if (strcmp(cmd, "up") == 0) {
        rc = vb_lab_serve_start(dir);
    } else if (strcmp(cmd, "down") == 0) {
        rc = vb_lab_serve_stop(dir);
    } else if (strcmp(cmd, "running") == 0) {
        int n = 0;
        rc = vb_lab_serve_running(dir, &n);
        if (!rc)
            printf("%d\n", n);
    } else {
        fprintf(stderr, "lab_site: unknown command %s\n", cmd);
        return 2;
    }
    if (rc)
        fprintf(stderr, "lab_site %s: %s\n", cmd, vb_error_msg());
    return rc ? 1 : 0;
}
