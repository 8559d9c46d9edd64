# connection_test starts tests/helpers/py_conn_peer.py (Python's own Connection) from the source tree.
if(TARGET connection_test)
  target_compile_definitions(connection_test PRIVATE MULTIPROC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
