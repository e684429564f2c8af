#include "admin_args.h"

#include <inttypes.h>
#include <string.h>

const char *vb_args_printable(const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (; text && text[n] && n < 64 && n + 1 < size; n++)
        out[n] = text[n] >= 0x20 && text[n] < 0x7f ? text[n] : '?';
    out[n] = '\0';
    return out;
}

static const vb_arg_t *s_find(const vb_arg_t *schema, const char *name)
{
    for (; schema->name; schema++)
        if (!strcmp(schema->name, name))
            return schema;
    return NULL;
}

static int s_range(const char *command, const vb_arg_t *a, int64_t v, const char *what)
{
    if (v >= a->min && v <= a->max)
        return 0;
    if (a->max == INT64_MAX)
        return vb_error_set(VB_EINVAL, "%s: '%s' must be at least %" PRId64 "%s", command, a->name,
                            a->min, what);
    return vb_error_set(VB_EINVAL, "%s: '%s' must be between %" PRId64 " and %" PRId64 "%s",
                        command, a->name, a->min, a->max, what);
}

static int s_string(const char *command, const vb_arg_t *a, const json_t *v)
{
    vb_arg_t len = *a;
    len.max = a->max ? a->max : VB_ARG_STRING_MAX;
    int rc = s_range(command, &len, (int64_t)json_string_length(v), " bytes long");
    if (rc || !a->choices)
        return rc;
    for (const char *const *c = a->choices; *c; c++)
        if (!strcmp(*c, json_string_value(v)))
            return 0;
    char allowed[256] = "";
    size_t used = 0;
    for (const char *const *c = a->choices; *c && used < sizeof allowed; c++)
        used += (size_t)snprintf(allowed + used, sizeof allowed - used, "%s%s",
                                 c == a->choices ? "" : ", ", *c);
    return vb_error_set(VB_EINVAL, "%s: '%s' must be one of %s", command, a->name, allowed);
}

static int s_array(const char *command, const vb_arg_t *a, const json_t *v)
{
    bool strings = a->type == VB_ARG_STRINGS;
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (strings ? !json_is_string(item) : !json_is_object(item))
            return vb_error_set(VB_EINVAL, "%s: '%s' must be an array of %s", command, a->name,
                                strings ? "strings" : "objects");
        if (strings && json_string_length(item) > VB_ARG_STRING_MAX)
            return vb_error_set(VB_EINVAL, "%s: '%s' has a string longer than %d bytes", command,
                                a->name, VB_ARG_STRING_MAX);
    }
    vb_arg_t count = *a;
    count.max = a->max ? a->max : VB_ARG_ITEMS_MAX;
    return s_range(command, &count, (int64_t)json_array_size(v), " items long");
}

/* One given value against its row. */
static int s_value(const char *command, const vb_arg_t *a, const json_t *v)
{
    static const char *const what[] = {[VB_ARG_INT] = "an integer",
                                       [VB_ARG_BOOL] = "a boolean",
                                       [VB_ARG_STRING] = "a string",
                                       [VB_ARG_STRINGS] = "an array of strings",
                                       [VB_ARG_OBJECTS] = "an array of objects"};
    bool ok = a->type == VB_ARG_INT      ? json_is_integer(v)
              : a->type == VB_ARG_BOOL   ? json_is_boolean(v)
              : a->type == VB_ARG_STRING ? json_is_string(v)
                                         : json_is_array(v);
    if (!ok)
        return vb_error_set(VB_EINVAL, "%s: '%s' must be %s", command, a->name, what[a->type]);
    switch (a->type) {
    case VB_ARG_INT:
        return s_range(command, a, (int64_t)json_integer_value(v), "");
    case VB_ARG_STRING:
        return s_string(command, a, v);
    case VB_ARG_STRINGS:
    case VB_ARG_OBJECTS:
        return s_array(command, a, v);
    default:
        return 0;
    }
}

int vb_args_check(const char *command, const vb_arg_t *schema, json_t *args)
{
    if (!json_is_object(args))
        return vb_error_set(VB_EINVAL, "%s: the arguments are not a JSON object", command);
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v)
    {
        const vb_arg_t *a = s_find(schema, key);
        char name[72];
        if (!a)
            return vb_error_set(VB_EINVAL, "%s: unknown argument '%s'", command,
                                vb_args_printable(key, name, sizeof name));
        if (json_is_null(v))
            continue; /* not given: a required one is missing, below */
        int rc = s_value(command, a, v);
        if (rc)
            return rc;
    }
    for (; schema->name; schema++) {
        const json_t *v2 = json_object_get(args, schema->name);
        if (schema->required && (!v2 || json_is_null(v2)))
            return vb_error_set(VB_EINVAL, "%s: missing argument '%s'", command, schema->name);
    }
    return 0;
}

int64_t vb_args_int(const json_t *args, const char *name, int64_t absent)
{
    const json_t *v = json_object_get(args, name);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : absent;
}

bool vb_args_bool(const json_t *args, const char *name)
{
    return json_is_true(json_object_get(args, name));
}

const char *vb_args_str(const json_t *args, const char *name)
{
    return json_string_value(json_object_get(args, name));
}
