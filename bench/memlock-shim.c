/* Preloaded into crun by the lifecycle benchmark. crun raises
 * RLIMIT_MEMLOCK to unlimited before loading its device program, which
 * kernels before 5.11 charged to it; kernels since charge the program to
 * its memory cgroup instead, so the raise changes nothing there. A CI
 * sandbox without CAP_SYS_RESOURCE refuses it and crun gives up. This
 * reports that one call as done, on kernels of 5.11 or later only (the
 * script checks), and passes every other call through. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/resource.h>

int setrlimit(__rlimit_resource_t resource, const struct rlimit *limit)
{
    static int (*real)(__rlimit_resource_t, const struct rlimit *);
    if (resource == RLIMIT_MEMLOCK)
        return 0;
    if (!real)
        real = (int (*)(__rlimit_resource_t, const struct rlimit *))dlsym(RTLD_NEXT, "setrlimit");
    return real(resource, limit);
}
