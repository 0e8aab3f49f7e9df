"""More devices than the fixtures hold: copies of the storage stick at other
ports of the nested hub 1-1.4, each with its own device number and serial,
for tests that need many devices (a guest's ports running out)."""

import os

import aua


def storage_at(port_number, devnum):
    """The storage stick at port 1-1.4.<port_number> as device <devnum>."""
    with open(os.path.join(aua.DEVICES, "storage.umockdev")) as f:
        text = f.read()
    text = text.replace("1-1.4.2", "1-1.4.%d" % port_number)
    text = text.replace("usb-0:1.4.2", "usb-0:1.4.%d" % port_number)
    text = text.replace("usb-0_1_4_2", "usb-0_1_4_%d" % port_number)
    text = text.replace("devpath=1.4.2", "devpath=1.4.%d" % port_number)
    text = text.replace("4C530001160824112433", "4C5300011608241124%02d" % port_number)
    return aua.renumber(text, devnum)


def load_storage(tb, port_number, devnum):
    """Plugs a storage stick in at 1-1.4.<port_number>; returns its port path."""
    tb.load_string(storage_at(port_number, devnum))
    return "1-1.4.%d" % port_number


def keyboard_at(port_number, devnum):
    """The keyboard (046d:c31c) at port 1-1.4.<port_number> as device <devnum>:
    a second USB keyboard, below the nested hub."""
    with open(os.path.join(aua.DEVICES, "keyboard.umockdev")) as f:
        text = f.read()
    text = text.replace("1-1.3", "1-1.4.%d" % port_number)
    text = text.replace("usb1/1-1/1-1.4.%d" % port_number,
                        "usb1/1-1/1-1.4/1-1.4.%d" % port_number)
    text = text.replace("usb-0:1.3", "usb-0:1.4.%d" % port_number)
    text = text.replace("usb-0_1_3", "usb-0_1_4_%d" % port_number)
    text = text.replace("devpath=1.3", "devpath=1.4.%d" % port_number)
    text = text.replace("L: driver=../", "L: driver=../../")    # one hub deeper
    return aua.renumber(text, devnum)


def load_keyboard(tb, port_number, devnum):
    """Plugs a second keyboard in at 1-1.4.<port_number>; returns its port path."""
    tb.load_string(keyboard_at(port_number, devnum))
    return "1-1.4.%d" % port_number
