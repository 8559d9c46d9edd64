# mp::Pool must reject, at compile time and with the reason, a task that cannot travel to a
# worker. A control that must compile guards against a check passing for a wrong reason.
mp_compile_check(pool_compile.control_shippable_tasks_compile pool_ok.cpp ok "")
mp_compile_check(pool_compile.map_lambda_capturing_string pool_unshippable_task.cpp fail
  "task's target cannot be shipped to a worker process")
mp_compile_check(pool_compile.apply_raw_pointer_argument pool_unshippable_apply.cpp fail
  "task argument cannot be shipped to the worker process")
