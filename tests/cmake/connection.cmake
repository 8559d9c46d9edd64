# connection_test starts tests/helpers/py_conn_peer.py (Python's own Connection) from the source tree.
if(TARGET connection_test)
  target_compile_definitions(connection_test PRIVATE MULTIPROC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
# listener_test starts tests/helpers/py_listener_peer.py (Python's Listener and Client).
if(TARGET listener_test)
  target_compile_definitions(listener_test PRIVATE MULTIPROC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
