/*
 * Unit tests of src/speed.c: the kernel's speed attribute as text, and the
 * rule of which controller version takes which speed (UHCI low and full,
 * EHCI high only, xHCI every speed; an unknown speed anywhere).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "speed.h"

static void parse(void **state)
{
    static const struct {
        const char *text;
        enum usb_speed speed;
    } cases[] = {
        { "1.5\n", USB_SPEED_LOW },   { "12\n", USB_SPEED_FULL },
        { "480\n", USB_SPEED_HIGH },  { "5000\n", USB_SPEED_SUPER },
        { "10000\n", USB_SPEED_SUPER }, { "20000", USB_SPEED_SUPER },
        { "12", USB_SPEED_FULL },     { "", USB_SPEED_UNKNOWN },
        { "fast\n", USB_SPEED_UNKNOWN }, { "480 Mb\n", USB_SPEED_UNKNOWN },
        { "53\n", USB_SPEED_UNKNOWN }, { NULL, USB_SPEED_UNKNOWN },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (usb_speed_parse(cases[i].text) != cases[i].speed)
            print_message("'%s'\n", cases[i].text ? cases[i].text : "(null)");
        assert_int_equal(usb_speed_parse(cases[i].text), cases[i].speed);
    }
    assert_string_equal(usb_speed_name(USB_SPEED_FULL), "full");
    assert_string_equal(usb_speed_name(USB_SPEED_UNREAD), "unknown");
}

static void controller_rule(void **state)
{
    /* takes[version - 1][speed]: low, full, high, super, unknown */
    static const enum usb_speed speeds[] = { USB_SPEED_LOW, USB_SPEED_FULL, USB_SPEED_HIGH,
                                             USB_SPEED_SUPER, USB_SPEED_UNKNOWN };
    static const bool takes[3][5] = {
        { true, true, false, false, true },     /* UHCI */
        { false, false, true, false, true },    /* EHCI without companions */
        { true, true, true, true, true },       /* xHCI */
    };

    for (int v = 1; v <= 3; v++)
        for (size_t s = 0; s < 5; s++) {
            if (usb_controller_takes(v, speeds[s]) != takes[v - 1][s])
                print_message("version %d, %s speed\n", v, usb_speed_name(speeds[s]));
            assert_true(usb_controller_takes(v, speeds[s]) == takes[v - 1][s]);
        }
    assert_string_equal(usb_controller_type(1), "UHCI");
    assert_string_equal(usb_controller_type(2), "EHCI");
    assert_string_equal(usb_controller_type(3), "xHCI");
}

/* PV USB (qusb): 1.1 takes low and full speed, 2.0 high too, neither SuperSpeed. */
static void pv_controller_rule(void **state)
{
    static const enum usb_speed speeds[] = { USB_SPEED_LOW, USB_SPEED_FULL, USB_SPEED_HIGH,
                                             USB_SPEED_SUPER, USB_SPEED_UNKNOWN };
    static const bool takes[2][5] = {
        { true, true, false, false, true },
        { true, true, true, false, true },
    };

    for (int v = 1; v <= 2; v++)
        for (size_t s = 0; s < 5; s++)
            assert_true(usb_pv_controller_takes(v, speeds[s]) == takes[v - 1][s]);
}

/* A sysfs path that does not exist reads as unknown, not as an error. */
static void read_missing(void **state)
{
    assert_int_equal(usb_speed_read("/devices/no/such/device"), USB_SPEED_UNKNOWN);
    assert_int_equal(usb_speed_read(NULL), USB_SPEED_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse),
        cmocka_unit_test(controller_rule),
        cmocka_unit_test(pv_controller_rule),
        cmocka_unit_test(read_missing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
