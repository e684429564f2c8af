/* The CLI's shared pieces: text width and aligned tables with non-ASCII and long names. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

Test(cli, text_width_counts_columns_not_bytes)
{
    cr_expect_eq(vb_cli_text_width(""), 0);
    cr_expect_eq(vb_cli_text_width("vm-01"), 5);
    cr_expect_eq(vb_cli_text_width("db #2 50% ça"), 12);
    cr_expect_eq(vb_cli_text_width("日本"), 4, "wide characters take two columns");
    cr_expect_eq(vb_cli_text_width("a\xff" "b"), 3, "a byte that is not UTF-8 counts as one");
}

/* The column (in characters of display width) where the second cell of each line starts. */
static size_t second_column(const char *line)
{
    const char *p = strstr(line, "  ");
    cr_assert_not_null(p, "no column gap in '%s'", line);
    while (*p == ' ')
        p++;
    char *head = strndup(line, (size_t)(p - line));
    size_t w = vb_cli_text_width(head);
    free(head);
    return w;
}

Test(cli, tables_stay_aligned_with_non_ascii_and_long_names)
{
    const char *headers[] = {"VM", "STATE"};
    vb_table_t *t = vb_table_new(2, headers);
    const char *rows[][2] = {{"db #2 50% ça", "ok"},
                             {"日本語のVM", "ok"},
                             {"a-very-long-virtual-machine-name-from-a-real-vcenter-0001", "ok"},
                             {"x", "failed"}};
    for (size_t i = 0; i < 4; i++)
        vb_table_add(t, rows[i]);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    vb_table_print(t, m);
    fclose(m);
    vb_table_destroy(&t);
    cr_assert_null(t);
    size_t col = 0, lines = 0;
    char *next = text;
    for (char *line; (line = strsep(&next, "\n")) && *line; lines++) {
        size_t c = second_column(line);
        if (lines == 0)
            col = c;
        cr_expect_eq(c, col, "line %zu '%s' starts its second column at %zu, not %zu", lines,
                     line, c, col);
    }
    cr_expect_eq(lines, 5);
    free(text);
}
