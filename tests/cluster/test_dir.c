/* The cluster directory keeps the secret safe: created 0700, refused when it or its parent is a link,
 * another user's, or writable by others; the secret file refused when it is a link or not 0600. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/internal.h"
#include "test.h"

/* A fresh private base directory for one test; the caller removes it with cleanup(). */
static void fresh(char *base, size_t n)
{
    snprintf(base, n, "/tmp/dray-test-dir-XXXXXX");
    ASSERT_TRUE(mkdtemp(base) != NULL);
}

static void cleanup(const char *base)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    ASSERT_EQ(system(cmd), 0);
}

static void expect_refusal(dray_status st, const char *needle)
{
    ASSERT_EQ(st, DRAY_EPERM);
    ASSERT_CONTAINS(dray_last_error(), needle);
}

static const char *HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

TEST(secret_written_private_and_read_back)
{
    char base[64], dir[128], path[160];
    fresh(base, sizeof base);
    snprintf(dir, sizeof dir, "%s/a/b/cluster-1", base);
    ASSERT_OK(dray__secret_write(dir, HEX));
    struct stat st;
    ASSERT_EQ(stat(dir, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/secret", dir);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    /* Read back independently of dray__secret_read. */
    char text[80] = {0};
    FILE *f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(fread(text, 1, sizeof text - 1, f), 65);
    fclose(f);
    ASSERT_TRUE(strncmp(text, HEX, 64) == 0 && text[64] == '\n');
    uint8_t secret[32];
    ASSERT_OK(dray__secret_read(path, secret));
    ASSERT_EQ(secret[0], 0x00);
    ASSERT_EQ(secret[1], 0x11);
    ASSERT_EQ(secret[31], 0xff);
    /* dray_cluster_secret_create makes a new random one in the same place. */
    ASSERT_OK(dray_cluster_secret_create(dir));
    uint8_t other[32];
    ASSERT_OK(dray__secret_read(path, other));
    ASSERT_TRUE(memcmp(secret, other, 32) != 0);
    cleanup(base);
}

TEST(open_directory_refused)
{
    char base[64], dir[128];
    fresh(base, sizeof base);
    snprintf(dir, sizeof dir, "%s/cluster-2", base);
    ASSERT_EQ(mkdir(dir, 0700), 0);
    ASSERT_EQ(chmod(dir, 0777), 0);
    expect_refusal(dray__secret_write(dir, HEX), "writable by other users");
    ASSERT_EQ(chmod(dir, 0755), 0); /* readable is fine: the secret file itself is 0600 */
    ASSERT_OK(dray__secret_write(dir, HEX));
    if (geteuid() == 0) { /* only root can give a directory away */
        ASSERT_EQ(chown(dir, 12345, 12345), 0);
        expect_refusal(dray__secret_write(dir, HEX), "owned by another user");
        expect_refusal(dray__dir_check_private(dir), dir);
    }
    cleanup(base);
}

TEST(parent_checked)
{
    char base[64], dir[128];
    fresh(base, sizeof base);
    snprintf(dir, sizeof dir, "%s/cluster-3", base);
    ASSERT_EQ(chmod(base, 0777), 0); /* like a /tmp/dray-<uid> planted open by someone else */
    expect_refusal(dray__secret_write(dir, HEX), base);
    ASSERT_EQ(chmod(base, 01777), 0); /* a sticky shared parent, like /tmp itself, is fine */
    ASSERT_OK(dray__secret_write(dir, HEX));
    ASSERT_EQ(chmod(base, 0700), 0);
    cleanup(base);
}

TEST(links_refused)
{
    char base[64], real[128], link[128], path[160], target[160];
    fresh(base, sizeof base);
    snprintf(real, sizeof real, "%s/real", base);
    snprintf(link, sizeof link, "%s/cluster-4", base);
    ASSERT_EQ(mkdir(real, 0700), 0);
    ASSERT_EQ(symlink(real, link), 0);
    expect_refusal(dray__secret_write(link, HEX), "symbolic link");
    /* A secret file that is a link to a readable file. */
    ASSERT_OK(dray__secret_write(real, HEX));
    snprintf(target, sizeof target, "%s/secret", real);
    snprintf(path, sizeof path, "%s/linked-secret", base);
    ASSERT_EQ(symlink(target, path), 0);
    uint8_t secret[32];
    expect_refusal(dray__secret_read(path, secret), "symbolic link");
    cleanup(base);
}

TEST(open_secret_file_refused)
{
    char base[64], dir[128], path[160];
    fresh(base, sizeof base);
    snprintf(dir, sizeof dir, "%s/cluster-5", base);
    ASSERT_OK(dray__secret_write(dir, HEX));
    snprintf(path, sizeof path, "%s/secret", dir);
    uint8_t secret[32];
    ASSERT_EQ(chmod(path, 0644), 0);
    expect_refusal(dray__secret_read(path, secret), "chmod 600");
    ASSERT_EQ(chmod(path, 0600), 0);
    if (geteuid() == 0) {
        ASSERT_EQ(chown(path, 12345, 12345), 0);
        expect_refusal(dray__secret_read(path, secret), "owned by another user");
        ASSERT_EQ(chown(path, geteuid(), getegid()), 0);
    }
    /* Garbage content is a format error, not a crash. */
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    fputs("not hex\n", f);
    fclose(f);
    ASSERT_STATUS(dray__secret_read(path, secret), DRAY_EFORMAT);
    /* dray__secret_load goes through the same checks ($DRAY_CLUSTER_DIR). */
    ASSERT_OK(dray__secret_write(dir, HEX));
    setenv("DRAY_CLUSTER_DIR", dir, 1);
    unsetenv("DRAY_SECRET");
    ASSERT_OK(dray__secret_load("127.0.0.1:1", secret));
    ASSERT_EQ(secret[1], 0x11);
    ASSERT_EQ(chmod(path, 0640), 0);
    expect_refusal(dray__secret_load("127.0.0.1:1", secret), path);
    unsetenv("DRAY_CLUSTER_DIR");
    cleanup(base);
}

RUN_TESTS(T_(secret_written_private_and_read_back), T_(open_directory_refused), T_(parent_checked),
          T_(links_refused), T_(open_secret_file_refused))
