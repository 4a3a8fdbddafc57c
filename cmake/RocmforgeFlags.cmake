# Warning and sanitizer flags, applied per target through rf_target_defaults().

function(rf_target_defaults target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wno-missing-field-initializers>)
  if(ROCMFORGE_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
endfunction()

if(ROCMFORGE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# A library of one layer: rf_library(NAME rf_gguf SOURCES a.cpp b.cpp DEPS rf_core)
function(rf_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SOURCES})
  target_include_directories(${ARG_NAME} PUBLIC ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS})
  rf_target_defaults(${ARG_NAME})
endfunction()

# A GoogleTest executable: rf_test(NAME gguf_test SOURCES a.cpp DEPS rf_gguf)
function(rf_test)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} rf_test_support GTest::gtest GTest::gtest_main)
  rf_target_defaults(${ARG_NAME})
  if(ROCMFORGE_SANITIZE)
    # The tests' own files take half of the sanitizer build's compile time and little of its run time: -O0 compiles
    # them ~40 % faster (the libraries under test keep the build's -O1).
    target_compile_options(${ARG_NAME} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-O0>)
  elseif(CMAKE_BUILD_TYPE STREQUAL "Release")
    # Likewise in the release build: -O1 for the tests' own files compiles them ~20 % faster than -O3 (13.5-14.7 ->
    # 10.6-11.9 s for server_http_test.cpp); the libraries under test keep -O3.
    target_compile_options(${ARG_NAME} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-O1>)
  endif()
  gtest_discover_tests(${ARG_NAME} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES ENVIRONMENT "ROCMFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()
