/* cli_catalog — `vbak catalog`: the catalog recreated from the repository alone.
 *
 *   vbak catalog rebuild --repo PATH --catalog NEW.db
 *
 * Runs without the coordinator (it needs only the repository and a new file). argv[0] is
 * "catalog". Results go to `out`; an error is one line per problem on `err`. Returns 0 when every
 * restore point was rebuilt, 1 when the rebuild failed (no catalog is left behind) or some
 * restore points could not be rebuilt (the catalog holds the others; `err` names each), 2 for a
 * usage error. */
#ifndef VB_CLI_CATALOG_H
#define VB_CLI_CATALOG_H

#include <stdio.h>

int vb_cli_catalog_io(int argc, char **argv, FILE *out, FILE *err);

#endif
