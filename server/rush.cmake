# server/rush.cmake -- `bookingrush rush` (server/rush.h): the load rehearsal
# against a live deployment. A static library, so the tests in tests/rush/
# link the same code as the binary. Needs the scenario loader (brsim).
pkg_check_modules(BR_RUSH_DEPS REQUIRED IMPORTED_TARGET jansson)
add_library(brrush STATIC
  rush_cmd.c rush_prep.c rush_http.c rush_net.c rush_plan.c rush_crowd.c
  rush_hist.c rush_meter.c rush_report.c rush_verdict.c)
target_include_directories(brrush PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(brrush PRIVATE ${BR_WARNINGS})
target_link_libraries(brrush PUBLIC brsim bradapters brcore PkgConfig::BR_RUSH_DEPS m)
