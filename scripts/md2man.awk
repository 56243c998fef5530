# Convert a marufs man page written in Markdown (Documentation/man/*.md) to
# man(7) roff. POSIX awk (mawk, gawk, busybox awk): no dependency beyond what
# every Debian system has.
#   awk -v version=0.1.0 -v date=2025-01-01 -f scripts/md2man.awk mkfs.marufs.8.md
#
# The subset of Markdown the pages use (keep to it):
#   # NAME(SECTION) [— title]    first line: .TH (and a NAME section from the
#                                 title when the page has no "## NAME")
#   ## HEADING / ### HEADING      .SH / .SS
#   paragraphs                    .PP (consecutive lines are joined by roff)
#   - item (2-space continuation lines; "  - item" nests one level)
#   TERM newline ": definition"   .TP (pandoc definition list; 2-space continuation)
#   4-space indented block, ```   .nf literal block
#   | table | rows |              literal block (separator rows dropped)
#   `code` **bold** *italic* [text](url)   inline
function esc(s) {
    gsub(/\\/, "\\e", s)
    gsub(/-/, "\\-", s)
    gsub(/—/, "\\(em", s)
    gsub(/–/, "\\(en", s)
    gsub(/→/, "\\(->", s)
    gsub(/×/, "\\(mu", s)
    gsub(/≥/, "\\(>=", s)
    gsub(/≤/, "\\(<=", s)
    return s
}
# Inline markup of one line of text (after escaping).
function inline(s,    out, i, j, c) {
    s = esc(s)
    out = ""
    while ((i = index(s, "`")) > 0) {
        j = index(substr(s, i + 1), "`")
        if (j == 0) break
        out = out emph(substr(s, 1, i - 1)) "\\fB" substr(s, i + 1, j - 1) "\\fR"
        s = substr(s, i + j + 1)
    }
    return out emph(s)
}
function emph(s,    out, i, j) {
    out = ""
    while ((i = index(s, "**")) > 0) {
        j = index(substr(s, i + 2), "**")
        if (j == 0) break
        out = out ital(substr(s, 1, i - 1)) "\\fB" substr(s, i + 2, j - 1) "\\fR"
        s = substr(s, i + j + 3)
    }
    return out ital(s)
}
function ital(s,    out, m) {
    out = ""
    # *word* at word boundaries only (not "a * b").
    while (match(s, /\*[^* ][^*]*\*/) && RLENGTH > 2) {
        out = out links(substr(s, 1, RSTART - 1)) "\\fI" substr(s, RSTART + 1, RLENGTH - 2) "\\fR"
        s = substr(s, RSTART + RLENGTH)
    }
    return out links(s)
}
function links(s,    out, i, j, k, rest) {
    # [text](url) -> text (url); plain index() scanning (mawk's bracket
    # expressions with "]" are not portable).
    out = ""
    while ((i = index(s, "[")) > 0) {
        rest = substr(s, i + 1)
        j = index(rest, "](")
        k = index(rest, ")")
        if (j == 0 || k < j) { out = out substr(s, 1, i); s = rest; continue }
        k = index(substr(rest, j + 2), ")")
        if (k == 0) break
        out = out substr(s, 1, i - 1) substr(rest, 1, j - 1) " (" substr(rest, j + 2, k - 1) ")"
        s = substr(rest, j + 2 + k)
    }
    return out s
}
# A text line for roff: a leading dot or quote must not start a request.
function text(s) {
    s = inline(s)
    if (s ~ /^[.']/) s = "\\&" s
    return s
}
function lit(s) {
    s = esc(s)
    if (s ~ /^[.']/) s = "\\&" s
    return s
}
function close_block() {
    flush_buf()
    if (mode == "code" || mode == "table") print ".fi\n.RE"
    if (mode == "item2") print ".RE"
    mode = ""
}
function para() {
    if (need_pp) { print ".PP"; need_pp = 0 }
}
# Text of the current paragraph, item or definition: joined, so that inline
# markup may span lines; printed when the block ends.
function add(s) { buf = (buf == "") ? s : buf " " s }
function flush_buf() { if (buf != "") { print text(buf); buf = "" } }
BEGIN {
    mode = ""; need_pp = 0; fence = 0; have_name = 0; pending = ""; title_done = 0
    if (version == "") version = "0"
    if (date == "") date = ""
}
# Remember whether the page has a NAME section (first pass is not possible in
# a stream: the title handler defers the synthetic NAME to the first "##").
NR == 1 {
    line = $0
    sub(/^# */, "", line)
    name = line; sec = ""; desc = ""
    if (match(line, /\([0-9][a-z]*\)/)) {
        name = substr(line, 1, RSTART - 1)
        sec = substr(line, RSTART + 1, RLENGTH - 2)
        desc = substr(line, RSTART + RLENGTH)
        sub(/^ *(—|-|–) */, "", desc)
    }
    up = toupper(name)
    printf ".TH \"%s\" \"%s\" \"%s\" \"marufs %s\" \"marufs manual\"\n", esc(up), sec, date, version
    print ".\\\" Generated from Markdown by scripts/md2man.awk; edit the .md file."
    next
}
# Fenced code blocks.
/^```/ {
    if (fence) { print ".fi\n.RE"; fence = 0; need_pp = 1 }
    else { flush_pending(); close_block(); para(); print ".PP\n.RS 4\n.nf"; fence = 1 }
    next
}
fence { print lit($0); next }
/^## / {
    flush_pending(); close_block()
    h = substr($0, 4)
    if (!title_done) {
        title_done = 1
        if (toupper(h) != "NAME" && desc != "") {
            print ".SH NAME"
            print esc(name) " \\- " inline(desc)
        }
    }
    print ".SH " toupper(esc(h))
    need_pp = 0
    next
}
/^### / { flush_pending(); close_block(); print ".SS " esc(substr($0, 5)); need_pp = 0; next }
/^[ \t]*$/ {
    flush_pending(); flush_buf()
    if (mode == "code") { blank_in_code++; next }
    # A blank line ends a table, a list or a definition.
    if (mode != "") close_block()
    need_pp = 1
    next
}
# Literal (4-space indented) blocks, unless continuing a list item.
/^    / && mode != "item" && mode != "item2" && mode != "def" {
    flush_pending(); flush_buf()
    if (mode != "code") { close_block(); print ".PP\n.RS 4\n.nf"; mode = "code"; blank_in_code = 0; need_pp = 0 }
    while (blank_in_code > 0) { print ""; blank_in_code-- }
    print lit(substr($0, 5))
    next
}
mode == "code" { close_block(); need_pp = 1 }
# Tables: literal rows, separator rows dropped.
/^\|/ {
    flush_pending(); flush_buf()
    if ($0 ~ /^\|[ :|-]+$/) next
    if (mode != "table") { close_block(); para(); print ".PP\n.RS 4\n.nf"; mode = "table" }
    print lit($0)
    next
}
# Definition list: a term line, then ": definition".
/^: / {
    flush_buf()
    if (pending != "") { print ".TP"; print text(pending); pending = "" }
    add(substr($0, 3))
    mode = "def"; need_pp = 0
    next
}
# Nested list item.
/^  [-*] / {
    flush_pending(); flush_buf()
    if (mode != "item2") { print ".RS 2"; mode = "item2" }
    print ".IP \\(bu 2"
    add(substr($0, 5))
    need_pp = 0
    next
}
/^[-*] / {
    flush_pending(); flush_buf()
    if (mode == "item2") print ".RE"
    mode = "item"
    print ".IP \\(bu 2"
    add(substr($0, 3))
    need_pp = 0
    next
}
# Continuation of an item or definition.
/^  +[^ ]/ && (mode == "item" || mode == "item2" || mode == "def") {
    s = $0; sub(/^ +/, "", s)
    add(s)
    next
}
{
    # Plain text. A line that may be a definition term is held back one line.
    if (need_pp || mode != "") {
        flush_pending()
        if (mode != "") { close_block(); need_pp = 1 }
        pending = $0
        next
    }
    flush_pending()
    add($0)
}
function flush_pending() {
    if (pending != "") { para(); add(pending); pending = "" }
}
END { flush_pending(); flush_buf(); if (fence) print ".fi\n.RE"; close_block() }
