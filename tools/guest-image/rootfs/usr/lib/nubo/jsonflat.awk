# Nubo tiny guest: JSON flattener for busybox awk (there is no jq).
# Reads one JSON document and prints one "path<TAB>value" line per scalar,
# e.g. "public_keys.mykey<TAB>ssh-ed25519 AAAA...", "keys.0.data<TAB>...",
# "hostname<TAB>vm1". Object keys and array indexes are joined with ".".
# Whitespace escapes (\n \t \r) in strings become spaces and values are
# trimmed, so multi-line values stay on one output line. \uXXXX escapes are
# kept literally except for plain ASCII, which is decoded.

function skipws() {
	while (pos <= n && index(" \t\r\n", substr(s, pos, 1)) > 0)
		pos++
}

function hexval(h,   i, v) {
	v = 0
	h = tolower(h)
	for (i = 1; i <= length(h); i++)
		v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
	return v
}

function pstring(   out, c, e, h, v) {
	out = ""
	if (substr(s, pos, 1) != "\"") {
		pos++
		return out
	}
	pos++
	while (pos <= n) {
		if (match(substr(s, pos), /^[^"\\]+/)) {
			out = out substr(s, pos, RLENGTH)
			pos += RLENGTH
			continue
		}
		c = substr(s, pos, 1)
		if (c == "\"") {
			pos++
			return out
		}
		# backslash escape
		e = substr(s, pos + 1, 1)
		pos += 2
		if (e == "n" || e == "t" || e == "r") out = out " "
		else if (e == "b" || e == "f") out = out ""
		else if (e == "u") {
			h = substr(s, pos, 4)
			pos += 4
			v = hexval(h)
			if (v >= 32 && v < 127) out = out sprintf("%c", v)
			else out = out "\\u" h
		} else out = out e
	}
	return out
}

function emit(path, v) {
	gsub(/^[ ]+|[ ]+$/, "", v)
	print path "\t" v
}

function join(path, k) {
	return path == "" ? k : path "." k
}

function pvalue(path,   c, k, i) {
	skipws()
	if (pos > n) return
	c = substr(s, pos, 1)
	if (c == "{") {
		pos++
		skipws()
		if (substr(s, pos, 1) == "}") { pos++; return }
		while (pos <= n) {
			skipws()
			k = pstring()
			skipws()
			if (substr(s, pos, 1) == ":") pos++
			pvalue(join(path, k))
			skipws()
			c = substr(s, pos, 1)
			pos++
			if (c != ",") return
		}
		return
	}
	if (c == "[") {
		pos++
		skipws()
		if (substr(s, pos, 1) == "]") { pos++; return }
		i = 0
		while (pos <= n) {
			pvalue(join(path, i))
			i++
			skipws()
			c = substr(s, pos, 1)
			pos++
			if (c != ",") return
		}
		return
	}
	if (c == "\"") {
		emit(path, pstring())
		return
	}
	if (match(substr(s, pos), /^[-+.0-9A-Za-z]+/)) {
		emit(path, substr(s, pos, RLENGTH))
		pos += RLENGTH
	} else
		pos++
}

{ s = s $0 "\n" }

END {
	n = length(s)
	pos = 1
	pvalue("")
}
