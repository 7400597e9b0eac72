/* The C test suites' one assertion: check(ok, name, printf-style detail) counts a pass, or prints
 * "FAIL name: detail" and counts a failure; each suite ends by printing n_pass and n_fail. */
#ifndef OD_TEST_CHECK_H
#define OD_TEST_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int n_pass, n_fail;

__attribute__((format(printf, 3, 4))) static void check(bool ok, const char *name, const char *fmt, ...) {
    if (ok) {
        n_pass++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    n_fail++;
}

#endif
