# pickle_python_test runs tests/helpers/py_pickle_peer.py under each required Python: it needs
# the source tree's path.
if(TARGET pickle_python_test)
  target_compile_definitions(pickle_python_test PRIVATE MULTIPROC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()

# send_py/recv_py need multiproc/pickle.hpp (not in the umbrella): without it a call is a
# compile-time error naming the codec, not a link error.
mp_compile_check(pickle_compile.send_py_with_pickle_compiles send_py_with_pickle.cpp ok "")
mp_compile_check(pickle_compile.send_py_without_pickle send_py_without_pickle.cpp fail
                 "PyCodec")
