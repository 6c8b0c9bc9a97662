/* The C baseline for bench/spoof_bench.py: a minimal raw-socket sender of forged DNS replies.
 *
 * Sends one prebuilt IPv4+UDP packet (the same DNS payload the Python spoofer sends, given
 * in hex) from SRC_IP:SRC_PORT to DST_IP:DST_PORT through socket(AF_INET, SOCK_RAW,
 * IPPROTO_RAW), 1024 packets per sendmmsg(2) call, with the DNS ID patched per packet
 * (packet k has ID k mod 65536), until COUNT packets are sent or SECONDS have passed.
 * Prints {"packets": N, "seconds": S, "syscalls": C, "errors": E} on stdout.
 *
 * Must never: send anywhere but loopback (it refuses a DST_IP or SRC_IP outside
 * 127.0.0.0/8), or run without both bounds.
 *
 * Build: cc -O2 -o spoof_baseline spoof_baseline.c
 * Usage: spoof_baseline SRC_IP SRC_PORT DST_IP DST_PORT PAYLOAD_HEX COUNT SECONDS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1024
#define HEADERS 28

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int loopback(struct in_addr a) { return (ntohl(a.s_addr) >> 24) == 127; }

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s SRC_IP SRC_PORT DST_IP DST_PORT PAYLOAD_HEX COUNT SECONDS\n",
                argv[0]);
        return 2;
    }
    struct in_addr src, dst;
    if (inet_pton(AF_INET, argv[1], &src) != 1 || inet_pton(AF_INET, argv[3], &dst) != 1) {
        fprintf(stderr, "bad IPv4 address\n");
        return 2;
    }
    if (!loopback(src) || !loopback(dst)) {
        fprintf(stderr, "refusing: forged traffic goes only to loopback (127.0.0.0/8)\n");
        return 2;
    }
    uint16_t sport = (uint16_t)atoi(argv[2]), dport = (uint16_t)atoi(argv[4]);
    const char *hex = argv[5];
    size_t plen = strlen(hex) / 2;
    long long count = atoll(argv[6]);
    double seconds = atof(argv[7]);
    if (plen < 12 || plen + HEADERS > 65535 || count < 0 || !(seconds > 0 && seconds < 3600)) {
        fprintf(stderr, "bad payload or bounds\n");
        return 2;
    }
    size_t len = plen + HEADERS;
    size_t stride = (len + 15) & ~(size_t)15;
    unsigned char *buf = calloc(BATCH, stride);
    unsigned char *pkt = buf;
    /* IPv4 header: the kernel fills in total length, checksum and (when 0) the IP ID. */
    pkt[0] = 0x45;
    pkt[2] = len >> 8;
    pkt[3] = len & 0xff;
    pkt[8] = 64;
    pkt[9] = IPPROTO_UDP;
    memcpy(pkt + 12, &src, 4);
    memcpy(pkt + 16, &dst, 4);
    /* UDP header, checksum 0 (none). */
    pkt[20] = sport >> 8;
    pkt[21] = sport & 0xff;
    pkt[22] = dport >> 8;
    pkt[23] = dport & 0xff;
    pkt[24] = (plen + 8) >> 8;
    pkt[25] = (plen + 8) & 0xff;
    for (size_t i = 0; i < plen; i++) {
        unsigned int byte;
        sscanf(hex + 2 * i, "%2x", &byte);
        pkt[HEADERS + i] = (unsigned char)byte;
    }
    for (int i = 1; i < BATCH; i++) memcpy(buf + i * stride, pkt, len);

    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = dst};
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = buf + i * stride;
        iov[i].iov_len = len;
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    long long sent = 0, syscalls = 0, errors = 0, k = 0;
    double start = now(), deadline = start + seconds;
    while (sent < count && now() < deadline) {
        int n = count - sent < BATCH ? (int)(count - sent) : BATCH;
        for (int i = 0; i < n; i++, k++) {
            unsigned char *p = buf + i * stride + HEADERS;
            p[0] = (k >> 8) & 0xff;
            p[1] = k & 0xff;
        }
        int pos = 0;
        while (pos < n) {
            int r = sendmmsg(fd, msgs + pos, n - pos, 0);
            syscalls++;
            if (r > 0) {
                pos += r;
                sent += r;
            } else {
                if (errno != EINTR) {
                    errors++;
                    pos++; /* the kernel refused this packet: skip it */
                }
                if (now() >= deadline) break;
            }
        }
    }
    double elapsed = now() - start;
    printf("{\"packets\": %lld, \"seconds\": %.6f, \"syscalls\": %lld, \"errors\": %lld}\n", sent,
           elapsed, syscalls, errors);
    close(fd);
    free(buf);
    return 0;
}
