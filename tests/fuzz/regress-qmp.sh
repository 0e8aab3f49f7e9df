#!/bin/bash
# make check: fuzz-qmp once over its seeds and the crashes kept (see regress).
exec bash "$(dirname "$0")/regress" qmp
