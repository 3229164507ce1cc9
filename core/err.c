/* err.c -- names and messages for the error table in err.h. */
#include "err.h"

const char *br_err_name(int err)
{
    switch (err) {
#define BR_ERR_CASE(sym, val, code, status, msg) \
    case sym:                            \
        return code;
        BR_ERR_MAP(BR_ERR_CASE)
#undef BR_ERR_CASE
    default:
        return "UNKNOWN";
    }
}

const char *br_err_message(int err)
{
    switch (err) {
#define BR_ERR_CASE(sym, val, code, status, msg) \
    case sym:                            \
        return msg;
        BR_ERR_MAP(BR_ERR_CASE)
#undef BR_ERR_CASE
    default:
        return "unknown error";
    }
}

unsigned br_err_http_status(int err)
{
    switch (err) {
#define BR_ERR_CASE(sym, val, code, status, msg) \
    case sym:                                    \
        return status;
        BR_ERR_MAP(BR_ERR_CASE)
#undef BR_ERR_CASE
    default:
        return 500;
    }
}
