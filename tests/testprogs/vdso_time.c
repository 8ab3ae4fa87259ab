/* Time through the vDSO (clock_gettime, gettimeofday, time) keeps working and never goes
 * backwards. */
#include "prog.h"
#include <sys/time.h>
int main(void) {
    struct timespec prev = {0, 0};
    long calls = 0;
    double end = now() + 0.7;
    while (now() < end) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        check(t.tv_sec > prev.tv_sec || (t.tv_sec == prev.tv_sec && t.tv_nsec >= prev.tv_nsec), "monotonic");
        prev = t;
        struct timeval tv;
        gettimeofday(&tv, NULL);
        check(tv.tv_sec >= time(NULL) - 1, "gettimeofday");
        calls++;
    }
    printf("clock calls ok: %d\n", calls > 1000);
    return 0;
}
