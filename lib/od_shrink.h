/* The student builder (placeholder: being written). */
#ifndef OD_SHRINK_H
#define OD_SHRINK_H
#include "od_runtime.h"
#endif
