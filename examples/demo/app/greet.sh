#!/bin/sh
# greet NAME prints a greeting; GREETING comes from the pipeline env.
echo "${GREETING:-hello}, $1"
