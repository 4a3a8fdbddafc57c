# `rocmforge bench`: needs the model, KV cache and CPU backend layers.
target_sources(rf_cli_commands PRIVATE ${CMAKE_CURRENT_LIST_DIR}/bench_command.cpp)
target_link_libraries(rf_cli_commands PUBLIC rf_model rf_kv rf_backend_cpu rf_device)
