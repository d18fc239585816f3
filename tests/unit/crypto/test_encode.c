/* src/crypto/encode.c: hex and unpadded base64url, round trips and refusals. */
#include "crypto/encode.h"
#include "test.h"
#include "util/common.h"

SK_TEST(test_hex)
{
    const uint8_t in[] = {0x00, 0x01, 0xab, 0xff, 0x7f};
    char text[16];
    size_t n = sk_hex_encode(text, in, sizeof(in));
    ASSERT_MEM_STR(text, n, "0001abff7f");
    uint8_t out[8];
    ASSERT_EQ(sk_hex_decode(out, sizeof(out), "0001ABff7f", 10), 5);
    ASSERT_TRUE(memcmp(out, in, 5) == 0);
    ASSERT_EQ(sk_hex_decode(out, sizeof(out), "", 0), 0);
    ASSERT_EQ(sk_hex_decode(out, sizeof(out), "abc", 3), -1); /* odd */
    ASSERT_EQ(sk_hex_decode(out, sizeof(out), "0g", 2), -1);
    ASSERT_EQ(sk_hex_decode(out, sizeof(out), " 0", 2), -1);
    ASSERT_EQ(sk_hex_decode(out, 2, "000000", 6), -1); /* more than cap */
}

SK_TEST(test_b64url_vectors)
{
    /* RFC 4648 §10's vectors, in the URL alphabet without padding. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < SK_ARRAY_LEN(plain); i++) {
        char text[16];
        size_t n = sk_b64url_encode(text, (const uint8_t *)plain[i], strlen(plain[i]));
        ASSERT_MEM_STR(text, n, coded[i]);
        ASSERT_EQ(n, sk_b64url_len(strlen(plain[i])));
        uint8_t out[16];
        int m = sk_b64url_decode(out, sizeof(out), coded[i], strlen(coded[i]));
        ASSERT_MEM_STR(out, m, plain[i]);
    }
    const uint8_t hi[] = {0xfb, 0xff, 0xbf};
    char text[8];
    ASSERT_MEM_STR(text, sk_b64url_encode(text, hi, 3), "-_-_");
}

SK_TEST(test_b64url_round_trip)
{
    uint8_t in[64], out[64];
    char text[100];
    for (size_t n = 0; n <= sizeof(in); n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        size_t tl = sk_b64url_encode(text, in, n);
        ASSERT_EQ(sk_b64url_decode(out, sizeof(out), text, tl), n);
        ASSERT_TRUE(n == 0 || memcmp(in, out, n) == 0);
    }
}

SK_TEST(test_b64url_refusals)
{
    uint8_t out[8];
    ASSERT_EQ(sk_b64url_decode(out, sizeof(out), "Zm9v=", 5), -1); /* padding is not in the alphabet */
    ASSERT_EQ(sk_b64url_decode(out, sizeof(out), "Zm+v", 4), -1); /* the standard alphabet's + and / */
    ASSERT_EQ(sk_b64url_decode(out, sizeof(out), "Zm/v", 4), -1);
    ASSERT_EQ(sk_b64url_decode(out, sizeof(out), "Z", 1), -1); /* no byte ends after 6 bits */
    ASSERT_EQ(sk_b64url_decode(out, sizeof(out), "Zh", 2), -1); /* non-zero trailing bits: a second text */
    ASSERT_EQ(sk_b64url_decode(out, sizeof(out), "Zg", 2), 1);
    ASSERT_EQ(sk_b64url_decode(out, 2, "Zm9v", 4), -1); /* more than cap */
}

SK_TEST_MAIN(SK_RUN(test_hex); SK_RUN(test_b64url_vectors); SK_RUN(test_b64url_round_trip);
             SK_RUN(test_b64url_refusals);)
