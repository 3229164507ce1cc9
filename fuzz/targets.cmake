# fuzz/targets.cmake -- the one list of fuzz targets, included by
# fuzz/CMakeLists.txt (libFuzzer and AFL++ builds) and by
# tests/fuzz/CMakeLists.txt (replay of corpus and regressions in the normal
# build). Each target is fuzz/<name>.c defining LLVMFuzzerTestOneInput, with
# the libraries it links (every library whose code it exercises, listed
# explicitly: the engine builds instrument exactly these for coverage). A
# target whose libraries are not part of this build is left out, with a note.
set(BR_FUZZ_ALL_TARGETS fuzz_commands fuzz_journal fuzz_auth fuzz_webhook fuzz_http_params)

set(BR_FUZZ_LIBS_fuzz_commands brcore bradapters)
set(BR_FUZZ_LIBS_fuzz_journal brcore bradapters)
set(BR_FUZZ_LIBS_fuzz_auth brhttp bradapters brcore)
set(BR_FUZZ_LIBS_fuzz_webhook brhttp bradapters brcore)
set(BR_FUZZ_LIBS_fuzz_http_params brserver brhttp bradapters brcore)

set(BR_FUZZ_TARGETS "")
foreach(t ${BR_FUZZ_ALL_TARGETS})
  set(missing "")
  foreach(lib ${BR_FUZZ_LIBS_${t}})
    if(NOT TARGET ${lib})
      list(APPEND missing ${lib})
    endif()
  endforeach()
  if(missing)
    message(STATUS "fuzz: ${t} left out: this build has no ${missing}")
  else()
    list(APPEND BR_FUZZ_TARGETS ${t})
  endif()
endforeach()
