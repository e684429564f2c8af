#include "worker.h"

#include <stdlib.h>

#include "error.h"

typedef struct {
    vb_worker_fn work;
    void *req;
    vb_worker_free_fn free_req;
} s_args_t;

static void s_actor(zsock_t *pipe, void *arg)
{
    s_args_t *args = arg;
    zsock_signal(pipe, 0);
    void *res = args->work(args->req);
    args->free_req(&args->req);
    free(args);
    zsock_send(pipe, "p", res);
    char *cmd = zstr_recv(pipe); /* $TERM from zactor_destroy */
    zstr_free(&cmd);
}

zactor_t *vb_worker_try_start(vb_worker_fn work, void *req, vb_worker_free_fn free_req)
{
    s_args_t *args = calloc(1, sizeof *args);
    zactor_t *actor = NULL;
    if (args) {
        *args = (s_args_t){work, req, free_req};
        actor = zactor_new(s_actor, args);
    }
    if (!actor) {
        free(args);
        vb_error_set(VB_EIO, "cannot start a worker thread");
    }
    return actor;
}

zactor_t *vb_worker_start(vb_worker_fn work, void *req, vb_worker_free_fn free_req)
{
    zactor_t *actor = vb_worker_try_start(work, req, free_req);
    if (!actor)
        free_req(&req);
    return actor;
}

void *vb_worker_receive(zactor_t *actor)
{
    void *res = NULL;
    if (zsock_recv(actor, "p", &res) != 0)
        return NULL;
    return res;
}
