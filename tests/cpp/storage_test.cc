// src/storage: SigV4 against AWS's published vectors, URL parsing, range merging, the
// HTTP answer checks, and credential resolution from an injected environment and files.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "storage/byte_ranges.h"
#include "storage/credentials.h"
#include "storage/http_response.h"
#include "storage/object_url.h"
#include "storage/sigv4.h"

namespace cellfeed::storage {
namespace {

// --- SigV4 ------------------------------------------------------------------------------
// Vectors copied from AWS's Signature Version 4 test suite
// (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html, the same files kept
// in awslabs/aws-c-auth tests/aws-signing-test-suite/v4 and bazelbuild/bazel
// third_party/aws-sig-v4-test-suite): credentials AKIDEXAMPLE, region us-east-1, service
// "service", 20150830T123600Z. And from the S3 API reference, "Signature Calculations for
// the Authorization Header: Transferring Payload in a Single Chunk" (GET Object with a
// Range, and GET Bucket), credentials AKIAIOSFODNN7EXAMPLE at 20130524T000000Z.
const AwsCredentials kSuite{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const AwsCredentials kS3Doc{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                            ""};
const char* kSuiteScope =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ";

SigV4Signature SignSuite(SigV4Request req, const AwsCredentials& c = kSuite) {
  req.headers.insert(req.headers.begin(), {"Host", "example.amazonaws.com"});
  req.payload_hash = kEmptyPayloadSha256;
  return SignV4(req, c, "us-east-1", "service", "20150830T123600Z");
}

std::string LastLine(const std::string& s) { return s.substr(s.rfind('\n') + 1); }

TEST(SigV4, GetVanilla) {
  SigV4Signature sig = SignSuite({"GET", "/", {}, {}, ""});
  EXPECT_EQ(sig.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(LastLine(sig.string_to_sign),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(sig.authorization, std::string(kSuiteScope) +
                                   "SignedHeaders=host;x-amz-date, Signature="
                                   "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4, GetVanillaQueryOrderKeyCase) {
  SigV4Signature sig = SignSuite({"GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, {}, ""});
  EXPECT_NE(sig.canonical_request.find("\nParam1=value1&Param2=value2\n"), std::string::npos);
  EXPECT_EQ(LastLine(sig.string_to_sign),
            "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0");
  EXPECT_EQ(sig.authorization, std::string(kSuiteScope) +
                                   "SignedHeaders=host;x-amz-date, Signature="
                                   "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4, GetHeaderValueTrim) {
  SigV4Signature sig = SignSuite(
      {"GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}}, ""});
  EXPECT_NE(sig.canonical_request.find("my-header1:value1\nmy-header2:\"a b c\"\n"),
            std::string::npos);
  EXPECT_EQ(sig.authorization, std::string(kSuiteScope) +
                                   "SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature="
                                   "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

TEST(SigV4, GetUnreserved) {
  SigV4Signature sig = SignSuite(
      {"GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", {}, {}, ""});
  EXPECT_EQ(sig.authorization, std::string(kSuiteScope) +
                                   "SignedHeaders=host;x-amz-date, Signature="
                                   "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
}

TEST(SigV4, PostVanilla) {
  SigV4Signature sig = SignSuite({"POST", "/", {}, {}, ""});
  EXPECT_EQ(sig.authorization, std::string(kSuiteScope) +
                                   "SignedHeaders=host;x-amz-date, Signature="
                                   "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4, PostStsHeaderBefore) {
  AwsCredentials c = kSuite;
  c.session_token =
      "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSP"
      "fIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQD"
      "YwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+s"
      "cqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
  SigV4Request req{"POST", "/", {}, {}, ""};
  SigV4Signature sig = SignSuite(req, c);
  EXPECT_EQ(sig.authorization, std::string(kSuiteScope) +
                                   "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="
                                   "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

TEST(SigV4, S3GetObjectWithRange) {
  SigV4Request req{"GET",
                   "/test.txt",
                   {},
                   {{"Host", "examplebucket.s3.amazonaws.com"},
                    {"Range", "bytes=0-9"},
                    {"x-amz-content-sha256", kEmptyPayloadSha256}},
                   kEmptyPayloadSha256};
  SigV4Signature sig = SignV4(req, kS3Doc, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_EQ(LastLine(sig.string_to_sign),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  // What the signer adds is what the request must send.
  std::map<std::string, std::string> sent(req.headers.begin(), req.headers.end());
  EXPECT_EQ(sent["x-amz-date"], "20130524T000000Z");
  EXPECT_EQ(sent["Authorization"], sig.authorization);
  EXPECT_EQ(sig.authorization.find(kS3Doc.secret_access_key), std::string::npos);
}

TEST(SigV4, S3ListObjectsQueryOutOfOrder) {
  SigV4Request req{"GET",
                   "/",
                   {{"prefix", "J"}, {"max-keys", "2"}},
                   {{"Host", "examplebucket.s3.amazonaws.com"},
                    {"x-amz-content-sha256", kEmptyPayloadSha256}},
                   kEmptyPayloadSha256};
  SigV4Signature sig = SignV4(req, kS3Doc, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_EQ(sig.authorization.substr(sig.authorization.size() - 64),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, AmzDateIsUtc) {
  // 2015-08-30T12:36:00Z as seconds since the epoch (date -u -d ... +%s).
  auto t = std::chrono::system_clock::from_time_t(1440938160);
  EXPECT_EQ(AmzDate(t), "20150830T123600Z");
}

// --- URLs ---------------------------------------------------------------------------------
TEST(ObjectUrl, ParsesBucketAndKey) {
  auto s3 = ObjectUrl::Parse("s3://my-bucket/path/to/file.h5ad");
  ASSERT_TRUE(s3.ok()) << s3.status().message();
  EXPECT_EQ(s3->scheme, UrlScheme::kS3);
  EXPECT_EQ(s3->bucket, "my-bucket");
  EXPECT_EQ(s3->key, "path/to/file.h5ad");
  auto gs = ObjectUrl::Parse("gs://b/k");
  ASSERT_TRUE(gs.ok());
  EXPECT_EQ(gs->scheme, UrlScheme::kGcs);
  EXPECT_EQ(gs->Redacted(), "gs://b/k");
  auto http = ObjectUrl::Parse("http://127.0.0.1:8080/x.zarr.zip");
  ASSERT_TRUE(http.ok());
  EXPECT_EQ(http->scheme, UrlScheme::kHttp);
  EXPECT_TRUE(ObjectUrl::IsUrl("https://a/b"));
  EXPECT_FALSE(ObjectUrl::IsUrl("/data/x.h5ad"));
  EXPECT_FALSE(ObjectUrl::IsUrl("s3:/x"));
}

TEST(ObjectUrl, RefusesWhatNamesNoObject) {
  for (const char* bad : {"s3://", "s3://bucket", "s3://bucket/", "gs:///key", "ftp://h/x",
                          "https://", "https:///path"}) {
    auto r = ObjectUrl::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(ObjectUrl::Parse("s3://bucket").status().message().find("s3://bucket/key"),
            std::string::npos);
}

TEST(ObjectUrl, RedactedDropsSignatureAndPassword) {
  auto r = ObjectUrl::Parse(
      "https://user:pw@b.s3.amazonaws.com/k.h5ad?X-Amz-Signature=abc&X-Amz-Credential=AKID");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Redacted(), "https://b.s3.amazonaws.com/k.h5ad");
}

TEST(ObjectUrl, UriEncode) {
  EXPECT_EQ(UriEncode("a b/c~d+e$\xc3\xa9", true), "a%20b/c~d%2Be%24%C3%A9");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
}

// --- merging ranges -----------------------------------------------------------------------
TEST(ByteRanges, MergesWithinHoleAndSize) {
  std::vector<ByteRange> r = {{100, 10}, {0, 10}, {15, 5}, {1000, 10}, {1012, 4}, {5000, 0}};
  auto plan = CoalesceRanges(r, /*max_hole=*/10, /*max_size=*/1 << 20);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].range.offset, 0u);
  EXPECT_EQ(plan[0].range.size, 20u);
  EXPECT_EQ(plan[0].members, (std::vector<size_t>{1, 2}));
  EXPECT_EQ(plan[1].range.offset, 100u);
  EXPECT_EQ(plan[2].range.offset, 1000u);
  EXPECT_EQ(plan[2].range.size, 16u);
  EXPECT_EQ(plan[2].members, (std::vector<size_t>{3, 4}));
}

TEST(ByteRanges, SizeLimitSplitsAndContainedRangesJoin) {
  std::vector<ByteRange> r = {{0, 60}, {60, 60}, {10, 5}};
  auto plan = CoalesceRanges(r, 0, 100);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].members, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(plan[1].range.offset, 60u);
}

// --- HTTP answers -------------------------------------------------------------------------
TEST(HttpResponse, ContentRange) {
  auto a = ParseContentRange("bytes 10-19/100");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, 10u);
  EXPECT_EQ(a->last, 19u);
  EXPECT_EQ(*a->total, 100u);
  auto b = ParseContentRange("bytes 0-0/*");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->total);
  auto c = ParseContentRange("bytes */0");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->satisfied);
  for (const char* bad : {"", "bytes 5-4/10", "bytes 0-10/10", "items 0-1/2", "bytes 0-x/3"})
    EXPECT_FALSE(ParseContentRange(bad)) << bad;
}

TEST(HttpResponse, RetryAfterAndErrorCode) {
  EXPECT_EQ(ParseRetryAfter("3"), 3.0);
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"), 0.0);  // in the past
  EXPECT_FALSE(ParseRetryAfter(""));
  EXPECT_FALSE(ParseRetryAfter("soon"));
  EXPECT_EQ(S3ErrorCode("<Error><Code>SlowDown</Code><Message>x</Message></Error>"), "SlowDown");
  EXPECT_EQ(S3ErrorCode("not xml"), "");
  ResponseHead h;
  h.AddLine("HTTP/1.1 100 Continue\r\n");
  h.AddLine("X: y\r\n");
  h.AddLine("HTTP/1.1 206 Partial Content\r\n");
  h.AddLine("Content-Range: bytes 0-0/5\r\n");
  EXPECT_EQ(h.status, 206);
  EXPECT_EQ(h.Header("x"), "");
  EXPECT_EQ(h.Header("content-range"), "bytes 0-0/5");
}

// --- credentials --------------------------------------------------------------------------
ObjectUrl Url(const char* s) { return ObjectUrl::Parse(s).value(); }

Environment FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Credentials, EnvironmentKeysRegionAndEndpoint) {
  auto url = Url("s3://bkt/a b.h5ad");
  auto t = ResolveTarget(url, {}, FakeEnv({{"AWS_ACCESS_KEY_ID", "AK"},
                                           {"AWS_SECRET_ACCESS_KEY", "SK"},
                                           {"AWS_SESSION_TOKEN", "TOK"},
                                           {"AWS_REGION", "eu-west-1"},
                                           {"AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"}}));
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->auth, AuthKind::kSigV4);
  EXPECT_EQ(t->credentials.session_token, "TOK");
  EXPECT_EQ(t->region, "eu-west-1");
  EXPECT_EQ(t->url, "http://127.0.0.1:9000/bkt/a%20b.h5ad");
  EXPECT_EQ(t->host, "127.0.0.1:9000");
  EXPECT_EQ(t->canonical_uri, "/bkt/a%20b.h5ad");
}

TEST(Credentials, AwsEndpointsVirtualHostedUnlessDotted) {
  auto env = FakeEnv({{"AWS_NO_SIGN_REQUEST", "true"}});
  auto a = ResolveTarget(Url("s3://bkt/k"), {}, env);
  EXPECT_EQ(a->url, "https://bkt.s3.us-east-1.amazonaws.com/k");
  EXPECT_EQ(a->auth, AuthKind::kNone);
  StorageOptions o;
  o.region = "us-west-2";
  o.requester_pays = true;
  auto b = ResolveTarget(Url("s3://my.bkt/k"), o, env);
  EXPECT_EQ(b->url, "https://s3.us-west-2.amazonaws.com/my.bkt/k");
  ASSERT_EQ(b->extra_headers.size(), 1u);
  EXPECT_EQ(b->extra_headers[0].first, "x-amz-request-payer");
}

TEST(Credentials, SharedFilesProfile) {
  std::string creds = WriteTemp("credentials",
                                "[default]\naws_access_key_id = DEF\naws_secret_access_key = "
                                "defsecret\n\n[ work ]\naws_access_key_id=WORK\n"
                                "aws_secret_access_key = worksecret\naws_session_token = wt\n");
  std::string config = WriteTemp("config",
                                 "[default]\nregion = us-east-2\n[profile  work]\n"
                                 "region = ap-south-1\nendpoint_url = http://127.0.0.1:1234\n"
                                 "s3 =\n  addressing_style = path\n");
  auto url = Url("s3://b/k");
  auto env = FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds},
                      {"AWS_CONFIG_FILE", config},
                      {"AWS_PROFILE", "work"}});
  auto t = ResolveTarget(url, {}, env);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->credentials.access_key_id, "WORK");
  EXPECT_EQ(t->credentials.session_token, "wt");
  EXPECT_EQ(t->region, "ap-south-1");
  EXPECT_EQ(t->url, "http://127.0.0.1:1234/b/k");
  auto d = ResolveTarget(url, {}, FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds},
                                           {"AWS_CONFIG_FILE", config}}));
  EXPECT_EQ(d->credentials.access_key_id, "DEF");
  EXPECT_EQ(d->region, "us-east-2");
  // Environment keys win over AWS_PROFILE (as in botocore); a profile named in the
  // options wins over both.
  auto e = ResolveTarget(url, {}, FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds},
                                           {"AWS_PROFILE", "work"},
                                           {"AWS_ACCESS_KEY_ID", "ENV"},
                                           {"AWS_SECRET_ACCESS_KEY", "envsecret"}}));
  EXPECT_EQ(e->credentials.access_key_id, "ENV");
  StorageOptions o;
  o.profile = "work";
  auto f = ResolveTarget(url, o, FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds},
                                          {"AWS_ACCESS_KEY_ID", "ENV"},
                                          {"AWS_SECRET_ACCESS_KEY", "envsecret"}}));
  EXPECT_EQ(f->credentials.access_key_id, "WORK");
  o.profile = "missing";
  auto g = ResolveTarget(url, o, FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds}}));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("'missing'"), std::string::npos);
}

TEST(Credentials, NoneFoundIsAnonymousAndSaysWhy) {
  auto t = ResolveTarget(Url("s3://b/k"), {}, FakeEnv({}));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->auth, AuthKind::kNone);
  EXPECT_NE(t->why_anonymous.find("no AWS credentials"), std::string::npos);
}

TEST(Credentials, Gcs) {
  auto url = Url("gs://bkt/dir/x.h5ad");
  auto anon = ResolveTarget(url, {}, FakeEnv({}));
  EXPECT_EQ(anon->url, "https://storage.googleapis.com/bkt/dir/x.h5ad");
  EXPECT_EQ(anon->auth, AuthKind::kNone);
  StorageOptions o;
  o.user_project = "billing-proj";
  auto bearer = ResolveTarget(url, o, FakeEnv({{"GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.x"},
                                               {"STORAGE_EMULATOR_HOST", "127.0.0.1:4443"}}));
  EXPECT_EQ(bearer->auth, AuthKind::kBearer);
  EXPECT_EQ(bearer->url, "http://127.0.0.1:4443/bkt/dir/x.h5ad");
  EXPECT_EQ(bearer->extra_headers[0].second, "billing-proj");
  o.access_key_id = "GOOG1E";
  o.secret_access_key = "s";
  auto hmac = ResolveTarget(url, o, FakeEnv({}));
  EXPECT_EQ(hmac->auth, AuthKind::kSigV4);
  EXPECT_EQ(hmac->region, "auto");
}

}  // namespace
}  // namespace cellfeed::storage
