/* A 32-bit x86 program for the seccomp tests: it must run under the
 * default profile (the i386 ABI is allowed, as Docker allows it) and meet
 * the same refusals as a 64-bit one, by the i386 syscall numbers. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    printf("bits=%zu\n", sizeof(void *) * 8);
    if (unshare(CLONE_NEWUTS) == 0) {
        puts("unshare=allowed");
    } else {
        printf("unshare=%s\n", strerror(errno));
    }
    long keyctl = syscall(SYS_keyctl, 0, 0, 0, 0, 0);
    printf("keyctl=%s\n", keyctl >= 0 ? "allowed" : strerror(errno));
    return 0;
}
