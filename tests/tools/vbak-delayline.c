/* vbak-delayline — a wire with a fixed latency, for the multi-host test on kernels without
 * sch_netem: every Ethernet frame that arrives on one interface leaves by the other DELAY_MS
 * later, in order, both ways. Run it in a namespace of its own between a host's link and the
 * bridge, and every packet of that host (ARP, TCP, UDP) takes DELAY_MS each way.
 *
 *   vbak-delayline IF_A IF_B DELAY_MS [--limit-mb N]
 *
 * Frames go through AF_PACKET sockets with virtio-net headers (PACKET_VNET_HDR), so segmentation
 * offload and partial checksums pass through as they came: a 64 KiB TCP segment stays one frame
 * and its checksum is completed by the interface it leaves by. At most N MiB (default 64) wait in
 * each direction (200 ms at 2.6 Gbit/s); frames beyond are dropped and counted, as a full queue
 * of a real link drops them. SIGTERM or SIGINT ends it; it prints its counts then. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_FRAME_MAX (sizeof(struct virtio_net_hdr) + 65536 + 64)

typedef struct s_frame {
    struct s_frame *next;
    int64_t due_us;
    size_t len;
    unsigned char data[];
} s_frame_t;

typedef struct {
    int in, out; /* frames read from `in` leave by `out` */
    s_frame_t *head, *tail;
    size_t queued, limit;
    uint64_t frames, dropped, send_errors;
} s_dir_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A raw socket on interface `name` that sees every frame arriving there (not its own). */
static int s_open(const char *name)
{
    int ifindex = (int)if_nametoindex(name);
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    int one = 1;
    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex};
    struct packet_mreq mr = {.mr_ifindex = ifindex, .mr_type = PACKET_MR_PROMISC};
    if (!ifindex || fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0 ||
        bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) {
        fprintf(stderr, "vbak-delayline: %s: %s\n", name, strerror(errno));
        exit(2);
    }
    return fd;
}

/* Reads what waits on d->in into its queue, due `delay_us` from now. */
static void s_read(s_dir_t *d, int64_t delay_us)
{
    static unsigned char buf[S_FRAME_MAX];
    ssize_t n;
    while ((n = recv(d->in, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC)) > 0) {
        s_frame_t *f = NULL;
        /* a frame longer than the buffer (MSG_TRUNC gives its real length) is dropped, counted,
         * never forwarded cut */
        if ((size_t)n > sizeof buf || d->queued + (size_t)n > d->limit ||
            !(f = malloc(sizeof *f + (size_t)n))) {
            d->dropped++;
            continue;
        }
        memcpy(f->data, buf, (size_t)n);
        f->len = (size_t)n;
        f->due_us = s_now_us() + delay_us;
        f->next = NULL;
        if (d->tail)
            d->tail->next = f;
        else
            d->head = f;
        d->tail = f;
        d->queued += f->len;
        d->frames++;
    }
}

/* Sends every frame that is due; returns the microseconds until the next one (-1: none). */
static int64_t s_send_due(s_dir_t *d)
{
    int64_t now = s_now_us();
    while (d->head && d->head->due_us <= now) {
        s_frame_t *f = d->head;
        if (send(d->out, f->data, f->len, 0) < 0)
            d->send_errors++;
        d->head = f->next;
        if (!d->head)
            d->tail = NULL;
        d->queued -= f->len;
        free(f);
    }
    return d->head ? d->head->due_us - now : -1;
}

static int64_t s_sooner(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 6 && !strcmp(argv[4], "--limit-mb"))) {
        fprintf(stderr, "usage: vbak-delayline IF_A IF_B DELAY_MS [--limit-mb N]\n");
        return 2;
    }
    char *end;
    long delay_ms = strtol(argv[3], &end, 10);
    long limit_mb = argc == 6 ? strtol(argv[5], NULL, 10) : 64;
    if (*end || delay_ms < 0 || delay_ms > 60000 || limit_mb < 1 || limit_mb > 4096) {
        fprintf(stderr, "vbak-delayline: DELAY_MS 0..60000, --limit-mb 1..4096\n");
        return 2;
    }
    int a = s_open(argv[1]), b = s_open(argv[2]);
    s_dir_t dirs[2] = {{.in = a, .out = b, .limit = (size_t)limit_mb << 20},
                       {.in = b, .out = a, .limit = (size_t)limit_mb << 20}};
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    printf("vbak-delayline: %s <-> %s delay_ms=%ld\n", argv[1], argv[2], delay_ms);
    fflush(stdout);
    struct pollfd pfd[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    int64_t wait_us = -1;
    while (!s_stop) {
        int timeout = wait_us < 0 ? 1000 : (int)((wait_us + 999) / 1000);
        if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
            break;
        wait_us = -1;
        for (int i = 0; i < 2; i++) {
            if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                fprintf(stderr, "vbak-delayline: %s: the port failed or went away\n",
                        argv[1 + i]);
                s_stop = 1;
            }
            if (pfd[i].revents & POLLIN)
                s_read(&dirs[i], (int64_t)delay_ms * 1000);
            wait_us = s_sooner(wait_us, s_send_due(&dirs[i]));
        }
    }
    for (int i = 0; i < 2; i++)
        printf("vbak-delayline: %s -> %s frames=%llu dropped=%llu send_errors=%llu\n", argv[1 + i],
               argv[2 - i], (unsigned long long)dirs[i].frames, (unsigned long long)dirs[i].dropped,
               (unsigned long long)dirs[i].send_errors);
    return 0;
}
