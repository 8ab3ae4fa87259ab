/* A process asleep in nanosleep and clock_nanosleep most of the time. */
#include "prog.h"
int main(void) {
    for (int i = 0; i < 8; i++) {
        struct timespec ts = {0, 90 * 1000 * 1000};
        if (i % 2)
            check(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0, "clock_nanosleep");
        else
            check(nanosleep(&ts, NULL) == 0, "nanosleep returned early");
        printf("slept %d\n", i);
    }
    return 0;
}
