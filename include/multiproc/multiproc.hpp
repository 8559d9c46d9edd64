// multiproc: Python's multiprocessing, natively in C++20. The umbrella header.
#pragma once

#include "multiproc/bootstrap.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"
#include "multiproc/timeout.hpp"
