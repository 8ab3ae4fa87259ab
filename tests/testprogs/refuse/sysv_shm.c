/* Refused: SysV shared memory attached. */
#include "../prog.h"
#include <sys/ipc.h>
#include <sys/shm.h>
int main(void) {
    int id = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);
    check(id >= 0, "shmget");
    char *p = shmat(id, NULL, 0);
    shmctl(id, IPC_RMID, NULL);
    strcpy(p, "shared");
    spin(1.2);
    printf("shm says %s\n", p);
    return 0;
}
