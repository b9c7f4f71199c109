/* dray: the umbrella header. Includes the core and every module present in this build. */
#ifndef DRAY_DRAY_H
#define DRAY_DRAY_H

#include "dray/core.h"
#include "dray/arrow_abi.h"
#if __has_include("dray/array.h")
#include "dray/array.h"
#endif
#if __has_include("dray/frame.h")
#include "dray/frame.h"
#endif
#if __has_include("dray/parquet.h")
#include "dray/parquet.h"
#endif
#if __has_include("dray/tune.h")
#include "dray/tune.h"
#endif
#if __has_include("dray/serve.h")
#include "dray/serve.h"
#endif
#if __has_include("dray/cluster.h")
#include "dray/cluster.h"
#endif
#if __has_include("dray/dashboard.h")
#include "dray/dashboard.h"
#endif

#endif /* DRAY_DRAY_H */
