/*
 * Preloaded into a bottle's programs where the runtime is a gVisor build
 * that refuses AT_NO_AUTOMOUNT in statx and fstatat with EINVAL (Debian
 * 12's runsc 0.0~20221219). coreutils passes that flag on every call, so
 * `ls FILE`, `ls -l` and `stat` fail there, and glibc's fallback for statx
 * passes it on too. A container has no automount points, so the flag
 * changes nothing in one: statx goes to the kernel without it.
 *
 * No libc headers: it needs only `syscall`, which glibc and musl export,
 * and builds the same for any image's C library.
 */

#define AT_NO_AUTOMOUNT 0x800

#if defined(__x86_64__)
#define NR_STATX 332
#elif defined(__aarch64__)
#define NR_STATX 291
#else
#error "a bottle's statx fallback is built for x86_64 and aarch64"
#endif

struct statx;
extern long syscall(long number, ...);

__attribute__((visibility("default"))) int
statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf)
{
    return (int)syscall(NR_STATX, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
}
