#include <criterion/criterion.h>
#include <string.h>

#include "scheduler.h"

/* A tiny site: per agent, the modes it may use for every disk (same for all disks unless a
 * disk is listed as unreachable). */
typedef struct {
    vb_transport_t modes[8][VB_TRANSPORT_COUNT];
    size_t count[8];
    uint32_t unreachable_disk; /* UINT32_MAX: none */
    int calls;
} site_t;

static size_t decide(void *ctx, uint32_t disk, uint32_t agent, vb_transport_t order[4])
{
    site_t *s = ctx;
    s->calls++;
    if (disk == s->unreachable_disk)
        return 0;
    memcpy(order, s->modes[agent], sizeof s->modes[agent]);
    return s->count[agent];
}

static site_t s_site;

static vb_sched_t *make(uint32_t per_ds, uint32_t per_host, uint32_t attempts)
{
    vb_sched_limits_t lim = {per_ds, per_host, attempts};
    s_site.unreachable_disk = UINT32_MAX;
    return vb_sched_new(&lim, decide, &s_site);
}

/* Adds a disk and returns the id the scheduler gave it. */
static uint32_t add_disk(vb_sched_t *s, uint32_t datastore, uint32_t host)
{
    uint32_t id = UINT32_MAX;
    cr_assert_eq(vb_sched_disk_add(s, datastore, host, &id), 0);
    return id;
}

static void set_modes(uint32_t agent, size_t n, vb_transport_t a, vb_transport_t b,
                      vb_transport_t c)
{
    vb_transport_t m[3] = {a, b, c};
    memcpy(s_site.modes[agent], m, sizeof m);
    s_site.count[agent] = n;
}

Test(scheduler, credit_based_dispatch)
{
    vb_sched_t *s = make(0, 0, 3);
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    set_modes(1, 1, VB_TRANSPORT_NBD, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 2), 0);
    cr_assert_eq(vb_sched_agent_up(s, 1, 2), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    for (uint64_t t = 1; t <= 10; t++)
        cr_assert_eq(vb_sched_task_add(s, t, 0), 0);
    vb_sched_assignment_t out[16];
    cr_assert_eq(vb_sched_dispatch(s, out, 16), 4, "only as many tasks as free slots");
    cr_assert_eq(vb_sched_dispatch(s, out, 16), 0, "no slot, no task");
    cr_assert_eq(vb_sched_task_done(s, out[0].task), 0);
    vb_sched_assignment_t more[4];
    cr_assert_eq(vb_sched_dispatch(s, more, 4), 1);
    cr_assert_eq(more[0].agent, out[0].agent, "the freed slot is reused");
    vb_sched_stats_t st;
    vb_sched_stats(s, &st);
    cr_assert_eq(st.running, 4);
    cr_assert_eq(st.queued, 5);
    vb_sched_destroy(&s);
    cr_assert_null(s);
}

Test(scheduler, best_transport_first_then_least_loaded)
{
    vb_sched_t *s = make(0, 0, 3);
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    set_modes(1, 2, VB_TRANSPORT_SAN, VB_TRANSPORT_NBD, 0);
    set_modes(2, 2, VB_TRANSPORT_SAN, VB_TRANSPORT_NBD, 0);
    for (uint32_t a = 0; a < 3; a++)
        cr_assert_eq(vb_sched_agent_up(s, a, 2), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    for (uint64_t t = 1; t <= 6; t++)
        cr_assert_eq(vb_sched_task_add(s, t, 0), 0);
    vb_sched_assignment_t out[6];
    cr_assert_eq(vb_sched_dispatch(s, out, 6), 6);
    /* the SAN agents fill first, alternating as the least loaded; the NBD agent gets the rest */
    cr_assert_eq(out[0].agent, 1);
    cr_assert_eq(out[0].transport, VB_TRANSPORT_SAN);
    cr_assert_eq(out[1].agent, 2);
    cr_assert_eq(out[2].agent, 1);
    cr_assert_eq(out[3].agent, 2);
    cr_assert_eq(out[4].agent, 0);
    cr_assert_eq(out[4].transport, VB_TRANSPORT_NBD);
    vb_sched_destroy(&s);
}

/* Agents on one machine share its CPUs: together they run no more than the machine's budget
 * (max of its CPUs and the most slots one offers), the best transport first; a slot freed on the
 * machine goes to the best of its agents again, an agent of another machine is not held back,
 * and a lost agent's tasks leave its machine's count. */
Test(scheduler, agents_sharing_a_machine_share_its_budget)
{
    vb_sched_t *s = make(0, 0, 3);
    set_modes(0, 1, VB_TRANSPORT_NBDSSL, 0, 0);
    set_modes(1, 1, VB_TRANSPORT_SAN, 0, 0);
    set_modes(2, 1, VB_TRANSPORT_HOTADD, 0, 0);
    set_modes(3, 1, VB_TRANSPORT_NBD, 0, 0);
    for (uint32_t a = 0; a < 4; a++)
        cr_assert_eq(vb_sched_agent_up(s, a, 4), 0);
    for (uint32_t a = 0; a < 3; a++) /* agents 0, 1, 2 on machine M (2 CPUs); 3 elsewhere */
        cr_assert_eq(vb_sched_agent_machine(s, a, "M", 2), 0);
    cr_assert_eq(vb_sched_agent_machine(s, 3, "N", 2), 0);
    cr_assert_eq(vb_sched_agent_machine(s, 7, "M", 2), VB_EINVAL, "an agent never up");
    cr_assert_eq(vb_sched_machine_budget(s, 0), 4, "max(2 CPUs, 4 slots)");
    cr_assert_eq(vb_sched_machine_budget(s, 3), 0, "alone on its machine: no shared budget");
    cr_assert_eq(add_disk(s, 0, 0), 0);
    for (uint64_t t = 1; t <= 20; t++)
        cr_assert_eq(vb_sched_task_add(s, t, 0), 0);
    vb_sched_assignment_t out[20];
    size_t n = vb_sched_dispatch(s, out, 20);
    cr_assert_eq(n, 8, "the shared machine runs 4 at once, the other agent its 4 slots");
    unsigned on[4] = {0};
    uint64_t san_task = 0;
    for (size_t i = 0; i < n; i++) {
        on[out[i].agent]++;
        san_task = out[i].agent == 1 ? out[i].task : san_task;
    }
    cr_assert_eq(on[1], 4, "the SAN agent takes the machine's whole budget");
    cr_assert_eq(on[0] + on[2], 0, "its other agents (HotAdd, NBDSSL) wait");
    cr_assert_eq(on[3], 4, "an agent of another machine is not held back");
    cr_assert_eq(vb_sched_task_done(s, san_task), 0);
    vb_sched_assignment_t more[4];
    cr_assert_eq(vb_sched_dispatch(s, more, 4), 1, "one slot freed on the machine");
    cr_assert_eq(more[0].agent, 1);
    cr_assert_eq(vb_sched_agent_down(s, 1), 4, "the SAN agent's tasks go back to the queue");
    n = vb_sched_dispatch(s, out, 20);
    cr_assert_eq(n, 4, "the machine's budget is free again: its next best agent takes it");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i].agent, 2, "HotAdd comes before NBDSSL");
    vb_sched_destroy(&s);
}

/* Groups are worked out again at every agent event: an agent that comes back on another machine
 * or without one leaves its old group's budget (with its running tasks), a group shrunk to one
 * agent has none left, and when the lowest id (whose record counts for a machine) moves away,
 * the machine it left and the one it joined keep budgets of their own. */
Test(scheduler, an_agent_that_leaves_a_machine_leaves_its_budget)
{
    vb_sched_t *s = make(0, 0, 3);
    for (uint32_t a = 0; a < 4; a++) {
        set_modes(a, 1, VB_TRANSPORT_NBD, 0, 0);
        cr_assert_eq(vb_sched_agent_up(s, a, 4), 0);
    }
    cr_assert_eq(vb_sched_agent_machine(s, 0, "M", 2), 0);
    cr_assert_eq(vb_sched_agent_machine(s, 1, "M", 2), 0);
    cr_assert_eq(vb_sched_agent_machine(s, 2, "N", 8), 0);
    cr_assert_eq(vb_sched_agent_machine(s, 3, "N", 8), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    for (uint64_t t = 1; t <= 40; t++)
        cr_assert_eq(vb_sched_task_add(s, t, 0), 0);
    vb_sched_assignment_t out[40];
    cr_assert_eq(vb_sched_dispatch(s, out, 40), 4 + 8, "M runs 4 at once, N its 8 slots");
    /* agent 0, M's lowest id, comes back on N: M is agent 1 alone (4 slots, no budget), N has
     * three agents and a budget of 8, which they already run */
    uint32_t ran_on_0 = vb_sched_agent_busy(s, 0);
    cr_assert_eq(vb_sched_agent_down(s, 0), ran_on_0, "its tasks go back to the queue");
    cr_assert_eq(vb_sched_agent_up(s, 0, 4), 0);
    cr_assert_eq(vb_sched_agent_machine(s, 0, "N", 8), 0);
    cr_assert_eq(vb_sched_machine_budget(s, 1), 0, "alone now");
    cr_assert_eq(vb_sched_machine_budget(s, 0), 8);
    vb_sched_dispatch(s, out, 40);
    cr_assert_eq(vb_sched_agent_busy(s, 1), 4, "agent 1 fills its own slots");
    cr_assert_eq(vb_sched_agent_busy(s, 0) + vb_sched_agent_busy(s, 2) + vb_sched_agent_busy(s, 3),
                 8, "N's three agents share its 8");
    /* agent 3 says no machine any more: N is agents 0 and 2 (budget 8); 3 is alone */
    cr_assert_eq(vb_sched_agent_machine(s, 3, NULL, 0), 0);
    cr_assert_eq(vb_sched_machine_budget(s, 3), 0);
    vb_sched_dispatch(s, out, 40);
    cr_assert_eq(vb_sched_agent_busy(s, 3), 4, "agent 3 fills its own slots");
    cr_assert_eq(vb_sched_agent_busy(s, 0) + vb_sched_agent_busy(s, 2), 8);
    /* agent 2 is lost: N is agent 0 alone, and may fill its 4 slots */
    vb_sched_agent_down(s, 2);
    cr_assert_eq(vb_sched_machine_budget(s, 0), 0);
    vb_sched_dispatch(s, out, 40);
    cr_assert_eq(vb_sched_agent_busy(s, 0), 4);
    vb_sched_destroy(&s);
}

Test(scheduler, datastore_and_host_limits)
{
    vb_sched_t *s = make(1, 0, 3);
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 8), 0);
    cr_assert_eq(add_disk(s, 7, 0), 0); /* two disks on datastore 7 */
    cr_assert_eq(add_disk(s, 7, 1), 1);
    cr_assert_eq(add_disk(s, 8, 1), 2);
    for (uint64_t t = 0; t < 6; t++)
        cr_assert_eq(vb_sched_task_add(s, t, (uint32_t)(t % 3)), 0);
    vb_sched_assignment_t out[8];
    cr_assert_eq(vb_sched_dispatch(s, out, 8), 2, "one per datastore");
    vb_sched_destroy(&s);

    s = make(0, 1, 3);
    cr_assert_eq(vb_sched_agent_up(s, 0, 8), 0);
    cr_assert_eq(add_disk(s, 0, 5), 0);
    cr_assert_eq(add_disk(s, 1, 5), 1);
    cr_assert_eq(vb_sched_task_add(s, 1, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 2, 1), 0);
    cr_assert_eq(vb_sched_dispatch(s, out, 8), 1, "one per host");
    vb_sched_destroy(&s);
}

Test(scheduler, lost_agent_tasks_run_elsewhere)
{
    vb_sched_t *s = make(0, 0, 3);
    set_modes(0, 1, VB_TRANSPORT_SAN, 0, 0);
    set_modes(1, 1, VB_TRANSPORT_NBD, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 2), 0);
    cr_assert_eq(vb_sched_agent_up(s, 1, 2), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 10, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 11, 0), 0);
    vb_sched_assignment_t out[4];
    cr_assert_eq(vb_sched_dispatch(s, out, 4), 2);
    cr_assert_eq(out[0].agent, 0);
    cr_assert_eq(out[1].agent, 0);
    cr_assert_eq(vb_sched_agent_down(s, 0), 2);
    cr_assert_eq(vb_sched_dispatch(s, out, 4), 2);
    cr_assert_eq(out[0].agent, 1);
    cr_assert_eq(out[0].attempt, 1, "a lost agent does not count as a failed attempt");
    /* a late result from the dead agent for a task now running elsewhere is accepted once */
    cr_assert_eq(vb_sched_task_done(s, out[0].task), 0);
    cr_assert_eq(vb_sched_task_done(s, out[0].task), VB_ENOTFOUND, "replayed result");
    vb_sched_destroy(&s);
}

Test(scheduler, failed_open_falls_back_then_backs_off_then_gives_up)
{
    vb_sched_t *s = make(0, 0, 2);
    set_modes(0, 3, VB_TRANSPORT_HOTADD, VB_TRANSPORT_NBDSSL, VB_TRANSPORT_NBD);
    cr_assert_eq(vb_sched_agent_up(s, 0, 1), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 1, 0), 0);
    vb_sched_assignment_t out[1];
    vb_sched_verdict_t v;
    vb_transport_t expect[] = {VB_TRANSPORT_HOTADD, VB_TRANSPORT_NBDSSL, VB_TRANSPORT_NBD};
    vb_sched_verdict_t verdict[] = {VB_SCHED_REQUEUED, VB_SCHED_REQUEUED, VB_SCHED_HELD};
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(vb_sched_dispatch(s, out, 1), 1);
            cr_assert_eq(out[0].transport, expect[i], "round %d try %d", round, i + 1);
            cr_assert_eq(out[0].attempt, (uint32_t)(round * 3 + i + 1), "tries are numbered");
            cr_assert_eq(vb_sched_task_failed(s, 1, VB_SCHED_FAIL_OPEN, &v), 0);
            if (round == 1 && i == 2)
                break;
            cr_assert_eq(v, verdict[i], "round %d try %d: fall back, then back off", round, i + 1);
        }
        if (round == 0) {
            vb_sched_stats_t st;
            vb_sched_stats(s, &st);
            cr_assert_eq(st.held, 1);
            cr_assert_eq(vb_sched_dispatch(s, out, 1), 0, "a held task waits for its release");
            uint32_t disks[1];
            cr_assert_eq(vb_sched_unreachable(s, disks, 1), 0,
                         "failed opens do not make a disk unreachable");
            cr_assert_eq(vb_sched_task_release(s, 1), 0);
            cr_assert_eq(vb_sched_task_release(s, 1), VB_ENOTFOUND);
        }
    }
    cr_assert_eq(v, VB_SCHED_GIVEN_UP, "two rounds of every mode failing: max_attempts 2");
    cr_assert_eq(vb_sched_dispatch(s, out, 1), 0);
    cr_assert_eq(s_site.calls, 1, "the policy is asked once per disk x agent");
    vb_sched_destroy(&s);
}

Test(scheduler, permanent_failure_gives_up_at_once_and_held_tasks_of_removed_disks_go)
{
    vb_sched_t *s = make(0, 0, 4);
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 4), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 1, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 2, 0), 0);
    vb_sched_assignment_t out[2];
    vb_sched_verdict_t v;
    cr_assert_eq(vb_sched_dispatch(s, out, 2), 2);
    cr_assert_eq(vb_sched_task_failed(s, 1, VB_SCHED_FAIL_PERMANENT, &v), 0);
    cr_assert_eq(v, VB_SCHED_GIVEN_UP, "no space, corrupt data: no retry");
    cr_assert_eq(vb_sched_task_failed(s, 2, VB_SCHED_FAIL_RUN, &v), 0);
    cr_assert_eq(v, VB_SCHED_HELD, "a failed run waits out a back-off");
    vb_sched_disk_remove(s, 0);
    vb_sched_stats_t st;
    vb_sched_stats(s, &st);
    cr_assert_eq(st.held, 0, "a removed disk's held task is forgotten");
    cr_assert_eq(vb_sched_task_release(s, 2), VB_ENOTFOUND);
    cr_assert_eq(add_disk(s, 0, 0), 0, "and its disk id is free again");
    vb_sched_destroy(&s);
}

Test(scheduler, unreachable_disk_and_cancel)
{
    vb_sched_t *s = make(0, 0, 3);
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    s_site.unreachable_disk = 1;
    cr_assert_eq(vb_sched_agent_up(s, 0, 4), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    cr_assert_eq(add_disk(s, 0, 0), 1);
    cr_assert_eq(vb_sched_task_add(s, 1, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 2, 1), 0);
    cr_assert_eq(vb_sched_task_add(s, 3, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 3, 0), VB_EEXISTS);
    cr_assert_eq(vb_sched_task_add(s, 4, 9), VB_ENOTFOUND);
    vb_sched_assignment_t out[4];
    cr_assert_eq(vb_sched_dispatch(s, out, 4), 2);
    uint32_t disks[4];
    cr_assert_eq(vb_sched_unreachable(s, disks, 4), 1);
    cr_assert_eq(disks[0], 1);
    vb_sched_disk_remove(s, 0);
    vb_sched_disk_remove(s, 1);
    vb_sched_stats_t st;
    vb_sched_stats(s, &st);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.running, 2, "running tasks keep their slot until their result comes");
    cr_assert_eq(st.slots_free, 2);
    cr_assert_eq(vb_sched_dispatch(s, out, 4), 0, "nothing of a cancelled disk runs again");
    vb_sched_verdict_t v;
    cr_assert_eq(vb_sched_task_done(s, out[0].task), 0);
    cr_assert_eq(vb_sched_task_failed(s, out[1].task, VB_SCHED_FAIL_RUN, &v), 0);
    cr_assert_eq(v, VB_SCHED_GIVEN_UP, "a cancelled disk's task is never retried");
    vb_sched_stats(s, &st);
    cr_assert_eq(st.running, 0);
    cr_assert_eq(st.slots_free, 4);
    cr_assert_eq(vb_sched_task_done(s, out[0].task), VB_ENOTFOUND);
    vb_sched_destroy(&s);
}

Test(scheduler, many_tasks_and_agents)
{
    vb_sched_t *s = make(0, 0, 3);
    for (uint32_t a = 0; a < 8; a++) {
        set_modes(a, 1, a % 2 ? VB_TRANSPORT_NBD : VB_TRANSPORT_NBDSSL, 0, 0);
        cr_assert_eq(vb_sched_agent_up(s, a, 4), 0);
    }
    for (uint32_t d = 0; d < 4; d++)
        cr_assert_eq(add_disk(s, d, d), d);
    for (uint64_t t = 0; t < 20000; t++)
        cr_assert_eq(vb_sched_task_add(s, t, (uint32_t)(t % 4)), 0);
    vb_sched_assignment_t out[64];
    size_t done = 0;
    for (;;) {
        size_t n = vb_sched_dispatch(s, out, 64);
        if (!n)
            break;
        for (size_t i = 0; i < n; i++, done++)
            cr_assert_eq(vb_sched_task_done(s, out[i].task), 0);
    }
    cr_assert_eq(done, 20000, "every task ran exactly once");
    vb_sched_destroy(&s);
}

Test(scheduler, refused_task_requeued_without_an_attempt)
{
    vb_sched_t *s = make(0, 0, 1);
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 1), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 7, 0), 0);
    vb_sched_assignment_t out[1];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(vb_sched_dispatch(s, out, 1), 1);
        cr_assert_eq(out[0].attempt, 1, "a refusal is not an attempt");
        cr_assert_eq(vb_sched_task_requeue(s, 7), 0);
    }
    cr_assert_eq(vb_sched_task_requeue(s, 7), VB_ENOTFOUND);
    vb_sched_destroy(&s);
}

Test(scheduler, disk_ids_come_back_only_after_their_last_task)
{
    vb_sched_t *s = make(1, 0, 3); /* one running task per datastore */
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 4), 0);
    uint32_t a = add_disk(s, 0, 0);
    cr_assert_eq(vb_sched_task_add(s, 1, a), 0);
    cr_assert_eq(vb_sched_task_add(s, 2, a), 0);
    vb_sched_assignment_t out[4];
    cr_assert_eq(vb_sched_dispatch(s, out, 4), 1);
    vb_sched_disk_remove(s, a); /* task 1 still runs on agent 0 */
    uint32_t b = add_disk(s, 0, 0);
    cr_assert_neq(b, a, "the id of a disk with a task still running was handed out again");
    cr_assert_eq(vb_sched_task_add(s, 3, b), 0);
    cr_assert_eq(vb_sched_dispatch(s, out + 1, 3), 0, "datastore 0 is still busy with task 1");
    cr_assert_eq(vb_sched_task_done(s, 1), 0);
    cr_assert_eq(vb_sched_dispatch(s, out + 1, 3), 1);
    cr_assert_eq(out[1].task, 3);
    uint32_t c = add_disk(s, 0, 0);
    cr_assert_eq(c, a, "the id comes back once its last task ended");
    cr_assert_eq(vb_sched_task_add(s, 4, c), 0);
    cr_assert_eq(vb_sched_task_done(s, 3), 0);
    cr_assert_eq(vb_sched_dispatch(s, out, 4), 1);
    cr_assert_eq(out[0].task, 4, "a task of the reused id runs; task 2 of the removed disk never");
    vb_sched_destroy(&s);
}

Test(scheduler, a_long_running_coordinator_holds_only_its_current_disks)
{
    vb_sched_t *s = make(0, 0, 3);
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 2), 0);
    vb_sched_assignment_t out[2];
    uint32_t highest = 0;
    for (uint64_t t = 1; t <= 100000; t++) {
        uint32_t d = add_disk(s, 0, 0);
        highest = d > highest ? d : highest;
        cr_assert_eq(vb_sched_task_add(s, t, d), 0);
        cr_assert_eq(vb_sched_dispatch(s, out, 2), 1);
        cr_assert_eq(vb_sched_task_done(s, t), 0);
        vb_sched_disk_remove(s, d);
    }
    cr_assert_lt(highest, 2, "100000 disks one after another used ids up to %u", highest);
    vb_sched_destroy(&s);
}

Test(scheduler, an_agent_that_comes_back_moved_is_decided_again)
{
    vb_sched_t *s = make(0, 0, 3);
    set_modes(0, 1, VB_TRANSPORT_SAN, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 1), 0);
    cr_assert_eq(add_disk(s, 0, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 1, 0), 0);
    cr_assert_eq(vb_sched_task_add(s, 2, 0), 0);
    vb_sched_assignment_t out[2];
    cr_assert_eq(vb_sched_dispatch(s, out, 2), 1);
    cr_assert_eq(out[0].transport, VB_TRANSPORT_SAN);
    cr_assert_eq(vb_sched_agent_down(s, 0), 1);
    /* it registers again from a proxy that no longer sees the LUN: NBD only */
    set_modes(0, 1, VB_TRANSPORT_NBD, 0, 0);
    cr_assert_eq(vb_sched_agent_up(s, 0, 1), 0);
    cr_assert_eq(vb_sched_dispatch(s, out, 2), 1);
    cr_assert_eq(out[0].transport, VB_TRANSPORT_NBD, "the old SAN decision was kept");
    vb_sched_destroy(&s);
}
