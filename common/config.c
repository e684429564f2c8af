#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VB_CONF_LINE_MAX 4096

static const vb_conf_key_t *s_find(const vb_conf_key_t *table, const char *key)
{
    for (const vb_conf_key_t *k = table; k->name; k++)
        if (strcmp(k->name, key) == 0)
            return k;
    return NULL;
}

int vb_parse_i64(const char *text, int64_t min, int64_t max, const char *what, int64_t *out)
{
    if (!text || !*text)
        return vb_error_set(VB_EINVAL, "%s: empty number", what);
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end)
        return vb_error_set(VB_EINVAL, "%s: '%s' is not a number", what, text);
    if (v < min || v > max)
        return vb_error_set(VB_EINVAL, "%s: %lld is out of range %" PRId64 "..%" PRId64, what, v,
                            min, max);
    *out = v;
    return 0;
}

int vb_parse_size(const char *text, const char *what, uint64_t *out)
{
    if (!text || !*text)
        return vb_error_set(VB_EINVAL, "%s: empty size", what);
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return vb_error_set(VB_EINVAL, "%s: '%s' is not a size", what, text);
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case '\0': break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: return vb_error_set(VB_EINVAL, "%s: '%s' has an unknown unit", what, text);
    }
    if (*end) {
        const char *rest = end + 1;
        if (*rest && strcasecmp(rest, "iB") != 0 && strcasecmp(rest, "B") != 0)
            return vb_error_set(VB_EINVAL, "%s: '%s' has an unknown unit", what, text);
    }
    if (shift && v > (UINT64_MAX >> shift))
        return vb_error_set(VB_EINVAL, "%s: '%s' is too large", what, text);
    *out = (uint64_t)v << shift;
    return 0;
}

int vb_config_set(const vb_conf_key_t *table, void *settings, const char *key, const char *value,
                  const char *where)
{
    const vb_conf_key_t *k = s_find(table, key);
    if (!k)
        return vb_error_set(VB_EINVAL, "%s: unknown key '%s'", where, key);
    char *field = (char *)settings + k->offset;
    switch (k->type) {
    case VB_CONF_STR: {
        char *copy = strdup(value);
        if (!copy)
            return vb_error_set(VB_ENOMEM, "%s: out of memory", where);
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case VB_CONF_INT: {
        int64_t v;
        char what[256];
        snprintf(what, sizeof what, "%s: key '%s'", where, key);
        int rc = vb_parse_i64(value, k->min, k->max, what, &v);
        if (rc)
            return rc;
        *(int64_t *)field = v;
        return 0;
    }
    case VB_CONF_BOOL:
        if (!strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes"))
            *(bool *)field = true;
        else if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no"))
            *(bool *)field = false;
        else
            return vb_error_set(VB_EINVAL, "%s: key '%s': '%s' is not a boolean (true/false)",
                                where, key, value);
        return 0;
    }
    return vb_error_set(VB_EINVAL, "%s: key '%s' has an unknown type", where, key);
}

int vb_config_defaults(const vb_conf_key_t *table, void *settings)
{
    for (const vb_conf_key_t *k = table; k->name; k++) {
        char *field = (char *)settings + k->offset;
        switch (k->type) {
        case VB_CONF_STR: *(char **)field = NULL; break;
        case VB_CONF_INT: *(int64_t *)field = 0; break;
        case VB_CONF_BOOL: *(bool *)field = false; break;
        }
        if (k->def) {
            int rc = vb_config_set(table, settings, k->name, k->def, "default");
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Parses the value part of a line: a double-quoted string (with \" and \\ escapes) or a bare
 * word without spaces, then optional white space and an optional # comment. */
static int s_parse_value(const char *p, char *out, size_t out_size, const char *where)
{
    size_t n = 0;
    if (*p == '"') {
        p++;
        for (;; p++) {
            if (*p == '\0')
                return vb_error_set(VB_EINVAL, "%s: missing closing quote", where);
            if (*p == '"') {
                p++;
                break;
            }
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            if (n + 1 >= out_size)
                return vb_error_set(VB_EINVAL, "%s: value too long", where);
            out[n++] = *p;
        }
    } else {
        while (*p && !isspace((unsigned char)*p) && *p != '#') {
            if (*p == '"')
                return vb_error_set(VB_EINVAL, "%s: stray quote in value", where);
            if (n + 1 >= out_size)
                return vb_error_set(VB_EINVAL, "%s: value too long", where);
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    while (isspace((unsigned char)*p))
        p++;
    if (*p && *p != '#')
        return vb_error_set(VB_EINVAL,
                            "%s: unexpected text after the value (values with spaces need quotes)",
                            where);
    return 0;
}

int vb_config_load_file(const vb_conf_key_t *table, void *settings, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return vb_error_set(VB_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return vb_error_set(VB_EINVAL, "%s is a directory, not a configuration file", path);
    }
    int rc = vb_config_load_stream(table, settings, f, path);
    fclose(f);
    return rc;
}

int vb_config_load_stream(const vb_conf_key_t *table, void *settings, FILE *f, const char *path)
{
    char line[VB_CONF_LINE_MAX];
    char value[VB_CONF_LINE_MAX];
    char where[512];
    int rc = 0;
    for (unsigned lineno = 1; fgets(line, sizeof line, f); lineno++) {
        snprintf(where, sizeof where, "%s:%u", path, lineno);
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = vb_error_set(VB_EINVAL, "%s: line too long", where);
            break;
        }
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char *key = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
            p++;
        char *key_end = p;
        while (*p == ' ' || *p == '\t')
            p++;
        if (key_end == key || *p != '=') {
            rc = vb_error_set(VB_EINVAL, "%s: expected key = \"value\"", where);
            break;
        }
        *key_end = '\0';
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if ((rc = s_parse_value(p, value, sizeof value, where)) != 0)
            break;
        if ((rc = vb_config_set(table, settings, key, value, where)) != 0)
            break;
    }
    if (!rc && ferror(f))
        rc = vb_error_set(VB_EIO, "%s: cannot read: %s", path, strerror(errno));
    return rc;
}

/* The key of `--key=value` (or `key=value`) into key, dashes spelled as underscores; the value
 * after the '=' or NULL when arg has no key and '='. */
static const char *s_override_split(const char *arg, char *key, size_t size)
{
    const char *p = arg;
    while (*p == '-')
        p++;
    const char *eq = strchr(p, '=');
    size_t klen = eq ? (size_t)(eq - p) : 0;
    if (!klen || klen >= size)
        return NULL;
    memcpy(key, p, klen);
    key[klen] = '\0';
    /* command-line keys may be spelled with dashes */
    for (char *c = key; *c; c++)
        if (*c == '-')
            *c = '_';
    return eq + 1;
}

bool vb_config_is_override(const vb_conf_key_t *table, const char *arg)
{
    char key[256];
    return strncmp(arg, "--", 2) == 0 && s_override_split(arg, key, sizeof key) &&
           s_find(table, key) != NULL;
}

int vb_config_override(const vb_conf_key_t *table, void *settings, const char *arg)
{
    char key[256];
    const char *value = s_override_split(arg, key, sizeof key);
    if (!value)
        return vb_error_set(VB_EINVAL, "%s: expected --key=value", arg);
    char where[300];
    snprintf(where, sizeof where, "--%s", key);
    return vb_config_set(table, settings, key, value, where);
}

int vb_config_check_required(const vb_conf_key_t *table, const void *settings)
{
    for (const vb_conf_key_t *k = table; k->name; k++) {
        if (!k->required || k->type != VB_CONF_STR)
            continue;
        const char *v = *(char *const *)((const char *)settings + k->offset);
        if (!v || !*v)
            return vb_error_set(VB_EINVAL, "required key '%s' is not set (set it in the file or "
                                           "as --%s=VALUE)", k->name, k->name);
    }
    return 0;
}

void vb_config_free(const vb_conf_key_t *table, void *settings)
{
    for (const vb_conf_key_t *k = table; k->name; k++) {
        if (k->type != VB_CONF_STR)
            continue;
        char **field = (char **)((char *)settings + k->offset);
        free(*field);
        *field = NULL;
    }
}

void vb_config_print_help(const vb_conf_key_t *table, FILE *out)
{
    for (const vb_conf_key_t *k = table; k->name; k++)
        fprintf(out, "  %-26s %s%s%s%s\n", k->name, k->help ? k->help : "",
                k->def ? " (default: " : (k->required ? " (required)" : ""), k->def ? k->def : "",
                k->def ? ")" : "");
}

void vb_config_write(FILE *out, const char *key, const char *value)
{
    fprintf(out, "%s = \"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', out);
        fputc(*p, out);
    }
    fputs("\"\n", out);
}
