/* vbak-agent: options → config → log → actor → wait for a signal (or a refusal) → stop. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "daemon.h"
#include "log.h"

static const vb_daemon_info_t s_info = {
    "vbak-agent",
    "The vbak agent: runs on a backup proxy, reads and writes disks for the coordinator's tasks.",
    vb_agent_config_table};

/* Every task allocates its pipeline's buffers (a chunk, a stored image and up to
 * VB_PIPELINE_READ_UNIT of read-ahead per worker, a few MiB each) on threads of its own. By
 * default glibc maps buffers that large and unmaps them when the task ends, or trims them off its
 * thread arenas, so the next task faults every page in again (180,000 page faults in a 3.5 GiB
 * restore over 4 agents). Kept in the arenas instead, freed buffers serve the next task: memory
 * stays at the peak the tasks reached (the agent's RSS), which it would reach again anyway. */
static void s_keep_freed_buffers(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20); /* the largest glibc takes on 64-bit */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int main(int argc, char **argv)
{
    s_keep_freed_buffers();
    vb_agent_settings_t settings;
    int rc = vb_daemon_configure(&s_info, &settings, argc, argv);
    if (rc == 1) {
        vb_config_free(vb_agent_config_table, &settings);
        return 0;
    }
    if (rc || (rc = vb_daemon_init_log(&s_info, &(vb_daemon_log_t){settings.log_level,
                                                                  settings.log_file,
                                                                  settings.log_format})) != 0) {
        fprintf(stderr, "vbak-agent: %s\n", vb_error_msg());
        vb_config_free(vb_agent_config_table, &settings);
        return 2;
    }
    zsys_init();
    zactor_t *agent = vb_agent_new(&settings);
    if (!agent) {
        fprintf(stderr, "vbak-agent: %s\n", vb_error_msg());
        vb_config_free(vb_agent_config_table, &settings);
        return 1;
    }
    if (vb_daemon_write_pid(settings.pid_file) != 0)
        VB_LOG_WARN("agent", "pid_file error=\"%s\"", vb_error_msg());
    /* Serving now (sockets bound, keys loaded): Type=notify units start their dependents. */
    if (vb_daemon_notify("READY=1") != 0)
        VB_LOG_WARN("agent", "notify error=\"%s\"", vb_error_msg());
    char *said = vb_daemon_wait(agent);
    int exit_code = 0;
    if (said && strncmp(said, "FAILED ", 7) == 0) {
        fprintf(stderr, "vbak-agent: %s\n", said + 7);
        exit_code = 1;
    }
    zstr_free(&said);
    if (vb_daemon_notify("STOPPING=1") != 0)
        VB_LOG_WARN("agent", "notify error=\"%s\"", vb_error_msg());
    zactor_destroy(&agent);
    if (settings.pid_file)
        remove(settings.pid_file);
    vb_config_free(vb_agent_config_table, &settings);
    return exit_code;
}
