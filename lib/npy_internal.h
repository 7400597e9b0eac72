/* Internal: the .npy header, parsed once for both readers (npy.c's files, dataset.c's .npz
 * members); each caller words its own errors. */
#ifndef OD_NPY_INTERNAL_H
#define OD_NPY_INTERNAL_H

#include "od_runtime.h"

typedef enum od_npy_header_status {
    OD_NPY_HEADER_OK = 0,
    OD_NPY_HEADER_NOT_NPY,       /* no \x93NUMPY magic */
    OD_NPY_HEADER_VERSION,       /* a format version other than 1 to 3 */
    OD_NPY_HEADER_TRUNCATED,     /* the header runs past the data */
    OD_NPY_HEADER_MALFORMED,     /* not the dict numpy writes */
    OD_NPY_HEADER_TOO_MANY_DIMS, /* more than OD_MAX_RANK dims */
} od_npy_header_status;

typedef struct od_npy_header {
    int version;
    char descr[32];
    bool fortran;
    int rank;
    int64_t dims[OD_MAX_RANK];
    size_t data_offset; /* where the array data starts */
} od_npy_header;

od_npy_header_status od_npy_parse_header(const uint8_t *d, size_t len, od_npy_header *h);

#endif
