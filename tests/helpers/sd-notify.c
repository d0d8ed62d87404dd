/* A minimal systemd-notify for the test rootfs: sends its arguments, one per
 * line, as one datagram to $NOTIFY_SOCKET. Built static by the tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "sd-notify: NOTIFY_SOCKET unset or too long\n");
        return 2;
    }
    char message[4096] = "";
    for (int i = 1; i < argc; i++) {
        if (strlen(message) + strlen(argv[i]) + 2 > sizeof(message)) return 2;
        strcat(message, argv[i]);
        strcat(message, "\n");
    }
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, message, strlen(message), 0, (struct sockaddr *)&address,
                         sizeof(address)) < 0) {
        perror("sd-notify");
        return 1;
    }
    return 0;
}
