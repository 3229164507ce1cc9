# fuzz/targets.cmake -- the one list of fuzz targets, included by
# fuzz/CMakeLists.txt (libFuzzer and AFL++ builds) and by
# tests/fuzz/CMakeLists.txt (replay of corpus and regressions in the normal
# build). Each target is fuzz/<name>.c defining LLVMFuzzerTestOneInput, with
# the libraries it links. A target whose libraries are not part of this
# build is left out, with a note. br_fuzz_closure() follows our libraries'
# link interfaces, so the engine builds can instrument every library of ours
# a harness ends up linking (brsim pulls in brredis, for instance).
set(BR_FUZZ_ALL_TARGETS fuzz_commands fuzz_journal fuzz_scenario fuzz_auth fuzz_webhook
                        fuzz_http_params fuzz_http_body fuzz_http_route fuzz_webhook_payload)

set(BR_FUZZ_LIBS_fuzz_commands brcore bradapters)
set(BR_FUZZ_LIBS_fuzz_journal brcore bradapters)
set(BR_FUZZ_LIBS_fuzz_scenario brsim bradapters brcore)
set(BR_FUZZ_LIBS_fuzz_auth brhttp bradapters brcore)
set(BR_FUZZ_LIBS_fuzz_webhook brhttp bradapters brcore)
set(BR_FUZZ_LIBS_fuzz_http_params brserver brhttp bradapters brcore)
set(BR_FUZZ_LIBS_fuzz_http_body brserver brhttp bradapters brcore)
set(BR_FUZZ_LIBS_fuzz_http_route brserver brhttp bradapters brcore)
set(BR_FUZZ_LIBS_fuzz_webhook_payload brserver brhttp bradapters brcore)

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

# br_fuzz_closure(OUT lib...): the libraries given plus every non-imported
# library target they link, transitively (at most 64).
function(br_fuzz_closure out)
  set(seen "")
  set(todo ${ARGN})
  foreach(guard RANGE 64)
    list(LENGTH todo left)
    if(left EQUAL 0)
      break()
    endif()
    list(POP_FRONT todo lib)
    if(NOT TARGET ${lib} OR lib IN_LIST seen)
      continue()
    endif()
    get_target_property(imported ${lib} IMPORTED)
    if(imported)
      continue()
    endif()
    list(APPEND seen ${lib})
    get_target_property(deps ${lib} INTERFACE_LINK_LIBRARIES)
    if(deps)
      foreach(d ${deps})
        string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" d "${d}")
        list(APPEND todo ${d})
      endforeach()
    endif()
  endforeach()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()
