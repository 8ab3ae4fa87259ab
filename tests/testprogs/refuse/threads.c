/* Refused: a multi-threaded process. Prints its result after a long wait; a refused
 * dump must leave it running unharmed. */
#include "../prog.h"
#include <pthread.h>
static void *worker(void *arg) { (void)arg; spin(1.2); return NULL; }
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    printf("threads done\n");
    return 0;
}
