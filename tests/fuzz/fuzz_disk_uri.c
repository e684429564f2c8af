/* fuzz_disk_uri — the disk URIs that arrive in task assignments (file, nbd, nbds, vddk, vsfile),
 * and the percent-encoding round trip: whatever parses must print back to the same parse. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/disk_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_round_trip(const char *text)
{
    char *enc = vb_disk_uri_escape(text, NULL);
    size_t n = enc ? 2 * strlen(enc) + 32 : 0;
    char *uri_text = enc ? malloc(n) : NULL;
    if (uri_text) {
        snprintf(uri_text, n, "nbd://h/%s?k=%s", enc, enc);
        vb_disk_uri_t back = {0};
        if (vb_disk_uri_parse(uri_text, &back) == 0) {
            const char *v = vb_disk_uri_get(&back, "k");
            if (strcmp(back.path, text) != 0 || !v || strcmp(v, text) != 0)
                abort(); /* the round trip lost or changed bytes */
            vb_disk_uri_free(&back);
        }
    }
    free(uri_text);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > VB_DISK_URI_MAX + 16)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    vb_disk_uri_t uri = {0};
    if (vb_disk_uri_parse(text, &uri) == 0) {
        char hp[600];
        vb_disk_uri_hostport(&uri, hp, sizeof hp);
        for (size_t i = 0; i < uri.nparams; i++)
            if (vb_disk_uri_get(&uri, uri.keys[i]) == NULL)
                abort(); /* a parsed key must be found again */
        vb_disk_uri_free(&uri);
    }
    /* Whatever bytes a name holds, escaping it into a URI and parsing that gives it back. */
    if (text[0])
        s_round_trip(text);
    free(text);
    return 0;
}
