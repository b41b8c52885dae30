package s3api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Payload hashes for x-amz-content-sha256.
const (
	emptySHA256     = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	amzDateFormat   = "20060102T150405Z"
)

// signV4 adds the headers of Signature Version 4 to h (x-amz-date,
// x-amz-content-sha256, x-amz-security-token, Authorization) for a
// request of method to host with the already encoded path and canonical
// query. Every header in h is signed, as is host.
func signV4(h http.Header, method, host, path, query, payload string, cr Credentials, region string, t time.Time) {
	date := t.UTC().Format(amzDateFormat)
	h.Set("X-Amz-Date", date)
	h.Set("X-Amz-Content-Sha256", payload)
	if cr.SessionToken != "" {
		h.Set("X-Amz-Security-Token", cr.SessionToken)
	}
	names, canonHeaders := canonicalHeaders(h, host)
	creq := strings.Join([]string{method, path, query, canonHeaders, names, payload}, "\n")
	scope := date[:8] + "/" + region + "/s3/aws4_request"
	sum := sha256.Sum256([]byte(creq))
	toSign := "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+cr.SecretKey), date[:8])
	for _, s := range []string{region, "s3", "aws4_request"} {
		key = hmacSHA256(key, s)
	}
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	h.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+cr.AccessKey+"/"+scope+
		", SignedHeaders="+names+", Signature="+sig)
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// canonicalHeaders is the list of signed header names and their
// canonical block (lower-case names in order, trimmed values, one line
// each, with a final newline).
func canonicalHeaders(h http.Header, host string) (string, string) {
	vals := map[string]string{"host": host}
	for k, v := range h {
		lk := strings.ToLower(k)
		if lk == "authorization" {
			continue
		}
		trimmed := make([]string, len(v))
		for i, s := range v {
			trimmed[i] = strings.Join(strings.Fields(s), " ")
		}
		vals[lk] = strings.Join(trimmed, ",")
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k + ":" + vals[k] + "\n")
	}
	return strings.Join(names, ";"), b.String()
}

// canonicalQuery encodes q the way the signature and the request both
// use it: keys in order, every byte but the unreserved ones escaped.
func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, uriEncode(k, true)+"="+uriEncode(v, true))
		}
	}
	return strings.Join(parts, "&")
}

// uriEncode escapes s as S3 wants: letters, digits and -_.~ stay, every
// other byte becomes %XX, and '/' stays unless slash is set.
func uriEncode(s string, slash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && !slash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
