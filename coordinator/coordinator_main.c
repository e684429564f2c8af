/* vbak-coordinator: options → config → log → actor → wait for a signal → stop. */
#include <stdio.h>

#include "coordinator.h"
#include "daemon.h"
#include "log.h"

static const vb_daemon_info_t s_info = {
    "vbak-coordinator",
    "The vbak coordinator: keeps the catalog, admits agents, hands out backup and restore tasks.",
    vb_coord_config_table};

int main(int argc, char **argv)
{
    vb_coord_settings_t settings;
    int rc = vb_daemon_configure(&s_info, &settings, argc, argv);
    if (rc == 1) {
        vb_config_free(vb_coord_config_table, &settings);
        return 0;
    }
    if (rc || (rc = vb_daemon_init_log(&s_info, &(vb_daemon_log_t){settings.log_level,
                                                                  settings.log_file,
                                                                  settings.log_format})) != 0) {
        fprintf(stderr, "vbak-coordinator: %s\n", vb_error_msg());
        vb_config_free(vb_coord_config_table, &settings);
        return 2;
    }
    zsys_init();
    zactor_t *coordinator = vb_coordinator_new(&settings);
    if (!coordinator) {
        fprintf(stderr, "vbak-coordinator: %s\n", vb_error_msg());
        vb_config_free(vb_coord_config_table, &settings);
        return 1;
    }
    if (vb_daemon_write_pid(settings.pid_file) != 0)
        VB_LOG_WARN("coordinator", "pid_file error=\"%s\"", vb_error_msg());
    /* Serving now (sockets bound, keys loaded): Type=notify units start their dependents. */
    if (vb_daemon_notify("READY=1") != 0)
        VB_LOG_WARN("coordinator", "notify error=\"%s\"", vb_error_msg());
    char *said = vb_daemon_wait(coordinator);
    zstr_free(&said);
    if (vb_daemon_notify("STOPPING=1") != 0)
        VB_LOG_WARN("coordinator", "notify error=\"%s\"", vb_error_msg());
    zactor_destroy(&coordinator);
    if (settings.pid_file)
        remove(settings.pid_file);
    vb_config_free(vb_coord_config_table, &settings);
    return 0;
}
