/* Same-host lanes (src/cluster/lane.c): a segment made by one side and mapped by name by the other,
 * records of every size crossing between two processes through many wrap-arounds (each checked
 * against the pattern the writer was given), a full ring refusing a record, the sleep/doorbell
 * handshake, refused segments (bad name, other mode, missing) and corrupt rings. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/cluster/internal.h"
#include "test.h"

/* The payload of record i: its length and bytes, from i alone (the reader's independent oracle). */
static size_t rec_len(unsigned i)
{
    static const size_t sizes[] = {1, 7, 8, 9, 31, 32, 33, 100, 1000, 4095, 4096, 65535};
    return i % 5 == 4 ? (i * 2654435761u) % dray__lane_max_frame() + 1 : sizes[i % 12];
}

static uint8_t rec_byte(unsigned i, size_t k) { return (uint8_t)(i * 31 + k * 7 + (k >> 8)); }

static void fill(uint8_t *buf, unsigned i, size_t n)
{
    for (size_t k = 0; k < n; k++)
        buf[k] = rec_byte(i, k);
}

static bool shm_exists(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    return access(path, F_OK) == 0;
}

TEST(create_open_and_name_removed)
{
    dray__lane *a, *b;
    ASSERT_OK(dray__lane_create(&a));
    ASSERT_TRUE(shm_exists(dray__lane_name(a)));
    struct stat sb;
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", dray__lane_name(a));
    ASSERT_EQ(stat(path, &sb), 0);
    ASSERT_EQ(sb.st_mode & 0777, 0600);
    ASSERT_OK(dray__lane_open(dray__lane_name(a), &b));
    ASSERT_TRUE(!shm_exists(dray__lane_name(a))); /* unlinked once mapped */
    /* one record each way */
    const char *m1 = "to the acceptor", *m2 = "to the dialer!";
    const void *p1[1] = {m1}, *p2[1] = {m2};
    size_t l1[1] = {strlen(m1)}, l2[1] = {strlen(m2)};
    ASSERT_TRUE(!dray__lane_pending(b));
    ASSERT_TRUE(dray__lane_write(a, p1, l1, 1));
    ASSERT_TRUE(dray__lane_write(b, p2, l2, 1));
    const uint8_t *rec;
    ASSERT_TRUE(dray__lane_pending(b));
    ASSERT_EQ(dray__lane_peek(b, &rec), (long)strlen(m1));
    ASSERT_EQ(memcmp(rec, m1, strlen(m1)), 0);
    dray__lane_consume(b);
    ASSERT_EQ(dray__lane_peek(b, &rec), 0);
    ASSERT_EQ(dray__lane_peek(a, &rec), (long)strlen(m2));
    ASSERT_EQ(memcmp(rec, m2, strlen(m2)), 0);
    dray__lane_consume(a);
    dray__lane_free(a);
    dray__lane_free(b);
}

/* A child process writes 20,000 records of mixed sizes (up to the largest frame) in three parts
 * each; the parent reads them all back in order, byte for byte. The 256 KiB ring wraps hundreds of
 * times and fills up often (the writer then retries). */
TEST(records_cross_processes_in_order)
{
    dray__lane *a;
    ASSERT_OK(dray__lane_create(&a));
    char name[64];
    snprintf(name, sizeof name, "%s", dray__lane_name(a));
    const unsigned n = 20000;
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        dray__lane *w;
        if (dray__lane_open(name, &w))
            _exit(2);
        uint8_t *buf = malloc(dray__lane_max_frame());
        unsigned full = 0;
        for (unsigned i = 0; i < n; i++) {
            size_t len = rec_len(i), cut1 = len / 3, cut2 = len / 2;
            fill(buf, i, len);
            const void *parts[3] = {buf, buf + cut1, buf + cut2};
            size_t lens[3] = {cut1, cut2 - cut1, len - cut2};
            while (!dray__lane_write(w, parts, lens, 3)) {
                full++;
                usleep(10);
            }
        }
        free(buf);
        dray__lane_free(w);
        _exit(full > 0 ? 0 : 3); /* the reader was slow at least once: the full path ran */
    }
    uint8_t *want = malloc(dray__lane_max_frame());
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *rec;
        long len;
        for (unsigned spins = 0; (len = dray__lane_peek(a, &rec)) == 0; spins++)
            if (spins % (1u << 20) == 0 && waitpid(pid, NULL, WNOHANG) == pid)
                ASSERT_TRUE(!"the writer process ended early");
        ASSERT_EQ(len, (long)rec_len(i));
        fill(want, i, (size_t)len);
        bad += memcmp(rec, want, (size_t)len) != 0;
        if (i % 1000 == 0)
            usleep(2000); /* let the ring fill up */
        dray__lane_consume(a);
    }
    free(want);
    ASSERT_EQ(bad, 0);
    const uint8_t *rec;
    ASSERT_EQ(dray__lane_peek(a, &rec), 0);
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    dray__lane_free(a);
}

TEST(full_ring_and_too_big)
{
    void *mem = malloc(dray__lane_segment_size());
    dray__lane *a, *b;
    ASSERT_OK(dray__lane_attach(mem, true, true, &a));
    ASSERT_OK(dray__lane_attach(mem, false, false, &b));
    size_t max = dray__lane_max_frame();
    uint8_t *buf = calloc(1, max + 1);
    const void *parts[1] = {buf};
    size_t big[1] = {max + 1};
    ASSERT_TRUE(!dray__lane_write(a, parts, big, 1));
    size_t one[1] = {max};
    int written = 0;
    while (dray__lane_write(a, parts, one, 1))
        written++;
    ASSERT_EQ(written, 3); /* four records of a quarter of the ring plus their headers do not fit */
    const uint8_t *rec;
    ASSERT_EQ(dray__lane_peek(b, &rec), (long)max);
    dray__lane_consume(b);
    ASSERT_TRUE(dray__lane_write(a, parts, one, 1)); /* room again */
    free(buf);
    dray__lane_free(a);
    dray__lane_free(b);
    free(mem);
}

/* The reader marks itself asleep only when nothing waits; a writer then sees it once. */
TEST(sleep_and_doorbell)
{
    void *mem = malloc(dray__lane_segment_size());
    dray__lane *a, *b;
    ASSERT_OK(dray__lane_attach(mem, true, true, &a));
    ASSERT_OK(dray__lane_attach(mem, false, false, &b));
    const char *m = "x";
    const void *parts[1] = {m};
    size_t lens[1] = {1};
    ASSERT_TRUE(dray__lane_write(a, parts, lens, 1));
    ASSERT_TRUE(!dray__lane_wake_needed(a)); /* the reader is awake */
    ASSERT_TRUE(!dray__lane_sleep(b));       /* a record waits: do not block */
    ASSERT_TRUE(!dray__lane_wake_needed(a));
    const uint8_t *rec;
    ASSERT_EQ(dray__lane_peek(b, &rec), 1);
    dray__lane_consume(b);
    ASSERT_TRUE(dray__lane_sleep(b));
    ASSERT_TRUE(dray__lane_write(a, parts, lens, 1));
    ASSERT_TRUE(dray__lane_wake_needed(a));  /* asleep: ring the doorbell ... */
    ASSERT_TRUE(!dray__lane_wake_needed(a)); /* ... once */
    dray__lane_awake(b);
    ASSERT_TRUE(dray__lane_write(a, parts, lens, 1));
    ASSERT_TRUE(!dray__lane_wake_needed(a));
    dray__lane_free(a);
    dray__lane_free(b);
    free(mem);
}

TEST(refused_segments)
{
    dray__lane *l;
    ASSERT_STATUS(dray__lane_open("/etc/passwd", &l), DRAY_EINVAL);
    ASSERT_STATUS(dray__lane_open("/dray-lane-../../etc/passwd", &l), DRAY_EINVAL);
    ASSERT_STATUS(dray__lane_open("/dray-lane-00000000000000000000000000000000", &l),
                  DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "another machine");
    /* open to others: refused (and removed) */
    const char *name = "/dray-lane-0123456789abcdef0123456789abcdef";
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(fchmod(fd, 0644), 0);
    ASSERT_EQ(ftruncate(fd, (off_t)dray__lane_segment_size()), 0);
    close(fd);
    ASSERT_STATUS(dray__lane_open(name, &l), DRAY_EPERM);
    ASSERT_CONTAINS(dray_last_error(), "mode 644");
    ASSERT_TRUE(!shm_exists(name));
    /* the right size and mode but not a lane */
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(ftruncate(fd, (off_t)dray__lane_segment_size()), 0);
    close(fd);
    ASSERT_STATUS(dray__lane_open(name, &l), DRAY_EFORMAT);
    /* a wrong size */
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(ftruncate(fd, 4096), 0);
    close(fd);
    ASSERT_STATUS(dray__lane_open(name, &l), DRAY_EPERM);
    ASSERT_TRUE(!shm_exists(name));
}

/* A reader never trusts the counters or lengths it finds in the ring. */
TEST(corrupt_rings)
{
    void *mem = malloc(dray__lane_segment_size());
    dray__lane *b;
    ASSERT_OK(dray__lane_attach(mem, true, false, &b));
    const uint8_t *rec;
    uint8_t data[64] = {0};
    dray__lane_set_rx(b, 1u << 30, 0, data, sizeof data); /* more than the ring holds */
    ASSERT_EQ(dray__lane_peek(b, &rec), -1);
    dray__lane_set_rx(b, 12, 4, data, sizeof data); /* tail not at a record */
    ASSERT_EQ(dray__lane_peek(b, &rec), -1);
    uint32_t len = 1u << 20; /* longer than any frame */
    memcpy(data, &len, 4);
    dray__lane_set_rx(b, 64, 0, data, sizeof data);
    ASSERT_EQ(dray__lane_peek(b, &rec), -1);
    len = 100; /* longer than what was published */
    memcpy(data, &len, 4);
    dray__lane_set_rx(b, 64, 0, data, sizeof data);
    ASSERT_EQ(dray__lane_peek(b, &rec), -1);
    len = 50;
    memcpy(data, &len, 4);
    dray__lane_set_rx(b, 64, 0, data, sizeof data);
    ASSERT_EQ(dray__lane_peek(b, &rec), 50);
    /* a record that is not a message is refused by the wire checks */
    dray__hdr h;
    dray_value v;
    ASSERT_STATUS(dray__lane_record(rec, 50, &h, &v), DRAY_EFORMAT);
    dray__lane_free(b);
    free(mem);
}

/* A message written as three parts comes out as the same checked message. */
TEST(record_is_a_wire_message)
{
    void *mem = malloc(dray__lane_segment_size());
    dray__lane *a, *b;
    ASSERT_OK(dray__lane_attach(mem, true, true, &a));
    ASSERT_OK(dray__lane_attach(mem, false, false, &b));
    /* a successful RESULT whose value is the raw bytes "hello" in the data section */
    dray_value items[2] = {dray_int(0), dray_null()}, ctl;
    ASSERT_OK(dray_list_create(items, 2, &ctl));
    void *enc;
    size_t elen;
    ASSERT_OK(dray_value_encode(&ctl, &enc, &elen));
    dray__hdr h = {DRAY__MSG_RESULT, DRAY__RF_RAW, (uint32_t)elen, 5, 77};
    uint8_t hb[DRAY__WIRE_HDR];
    dray__wire_put_header(hb, &h);
    const void *parts[3] = {hb, enc, "hello"};
    size_t lens[3] = {sizeof hb, elen, 5};
    ASSERT_TRUE(dray__lane_write(a, parts, lens, 3));
    const uint8_t *rec;
    long n = dray__lane_peek(b, &rec);
    ASSERT_EQ(n, (long)(sizeof hb + elen + 5));
    dray__hdr got;
    dray_value data;
    ASSERT_OK(dray__lane_record(rec, (size_t)n, &got, &data));
    ASSERT_EQ(got.type, DRAY__MSG_RESULT);
    ASSERT_EQ(got.rid, 77);
    size_t dl;
    const uint8_t *d = dray_bytes_data(&data, &dl);
    ASSERT_EQ(dl, 5);
    ASSERT_EQ(memcmp(d, "hello", 5), 0);
    dray_value v;
    ASSERT_OK(dray__wire_decode_ctl(&got, rec + DRAY__WIRE_HDR, &v));
    ASSERT_EQ(dray_list_get(&v, 0)->u.i, 0);
    ASSERT_EQ(dray_list_get(&v, 1)->type, DRAY_T_NULL);
    dray_value_release(&v);
    dray_value_release(&data);
    dray__lane_consume(b);
    dray_free(enc);
    dray_value_release(&ctl);
    dray__lane_free(a);
    dray__lane_free(b);
    free(mem);
}

RUN_TESTS(T_(create_open_and_name_removed), T_(records_cross_processes_in_order),
          T_(full_ring_and_too_big), T_(sleep_and_doorbell), T_(refused_segments),
          T_(corrupt_rings), T_(record_is_a_wire_message))
