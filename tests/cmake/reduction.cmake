# The codec must reject, at compile time and with the reason, the trivially copyable types it
# cannot check or cannot send without their padding (docs/reduction.md).
function(mp_codec_compile_check name src expect regex)
  add_test(NAME codec_compile.${name}
    COMMAND ${CMAKE_COMMAND}
      -DCXX=${CMAKE_CXX_COMPILER}
      -DSRC=${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/${src}
      -DINCLUDE=${PROJECT_SOURCE_DIR}/include
      -DEXPECT=${expect}
      -DREGEX=${regex}
      -P ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/expect_compile.cmake)
  set_tests_properties(codec_compile.${name} PROPERTIES TIMEOUT 90)
endfunction()
mp_codec_compile_check(control_plain_structs_compile codec_ok.cpp ok "")
mp_codec_compile_check(struct_holding_variant codec_struct_variant.cpp fail
  "holds a pointer, a reference, or a union")
mp_codec_compile_check(large_struct_with_padding codec_large_padded.cpp fail
  "has padding or bool members and is larger than the codec maps")
mp_codec_compile_check(task_lambda_capturing_pointer task_captures_pointer.cpp fail
  "task's target cannot be shipped to a worker process")
