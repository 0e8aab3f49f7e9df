/*
 * bare-monitor: the least a libudev client can do per event, as a delivery
 * reference for bench/bench.py.  tests/fixtures/udev-monitor prints every
 * property of every event as JSON, which costs about as much as the
 * daemon's own work; this one receives the event with the daemon's filter
 * (usb/usb_device) and prints one short line:
 *
 *     {"event":"add","devpath":"/devices/.../1-1.2"}
 *
 * It says READY=1 to $NOTIFY_SOCKET once it listens and enumerates nothing.
 *
 * Build: cc -std=c11 -O2 -o bare-monitor bare-monitor.c -ludev
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libudev.h>

static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len;
    int fd;

    if (!path || !*path || (len = strlen(path)) >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        perror("bare-monitor: notify");
    close(fd);
}

int main(void)
{
    struct udev *udev = udev_new();
    struct udev_monitor *mon = udev ? udev_monitor_new_from_netlink(udev, "udev") : NULL;
    struct pollfd pfd;

    if (!mon || udev_monitor_filter_add_match_subsystem_devtype(mon, "usb", "usb_device") < 0 ||
        udev_monitor_enable_receiving(mon) < 0) {
        fprintf(stderr, "bare-monitor: cannot set up the monitor\n");
        return 1;
    }
    notify_ready();
    pfd.fd = udev_monitor_get_fd(mon);
    pfd.events = POLLIN;
    for (;;) {
        struct udev_device *dev;

        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("bare-monitor: poll");
            return 1;
        }
        while ((dev = udev_monitor_receive_device(mon))) {
            const char *action = udev_device_get_action(dev);

            printf("{\"event\":\"%s\",\"devpath\":\"%s\"}\n", action ? action : "?",
                   udev_device_get_devpath(dev));
            fflush(stdout);
            udev_device_unref(dev);
        }
    }
}
