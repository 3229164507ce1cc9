# web_embed.cmake -- turns the files under web/ into one C file (cmake -P, run
# at build time): an array per file and the table br_web_files[] of
# {path, bytes, length} that server/web.c serves.
#   -DWEB_DIR=dir -DLIST=file (one path relative to WEB_DIR a line) -DOUTPUT=file.c
file(STRINGS "${LIST}" FILES)
set(out "/* Generated from ${WEB_DIR} by server/web_embed.cmake; do not edit. */\n")
string(APPEND out "#include <stddef.h>\n#include \"server/web.h\"\n")
set(table "")
set(i 0)
foreach(rel IN LISTS FILES)
  file(READ "${WEB_DIR}/${rel}" hex HEX)
  string(LENGTH "${hex}" hex_len)
  math(EXPR len "${hex_len} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
  string(APPEND out "static const unsigned char f${i}[] = {\n${bytes}0x00};\n")
  string(APPEND table "    {\"${rel}\", f${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND out "const struct br_web_file br_web_files[] = {\n${table}    {NULL, NULL, 0}};\n")
string(APPEND out "const size_t br_web_file_count = ${i};\n")
file(WRITE "${OUTPUT}" "${out}")
