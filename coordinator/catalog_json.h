/* catalog_json — catalog records as the JSON the control socket answers with (and `--json`
 * prints). Times are ISO 8601 in UTC; every function returns a new reference. */
#ifndef VB_CATALOG_JSON_H
#define VB_CATALOG_JSON_H

#include <jansson.h>

#include "catalog/catalog.h"

json_t *vb_json_time(int64_t unix_ms); /* null for 0 */
json_t *vb_json_job(const vb_job_t *job, bool details);
json_t *vb_json_task(const vb_task_t *task);
json_t *vb_json_restore_point(const vb_restore_point_t *rp, bool disks);

#endif
