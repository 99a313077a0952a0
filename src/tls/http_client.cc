#include "tls/http_client.h"

namespace tandem::tls {

std::unique_ptr<httplib::Client> NewHttpClient(bool https, const std::string& host, int port,
                                               const Trust& trust) {
  auto c = https ? std::make_unique<httplib::Client>("https://" + host + ":" + std::to_string(port))
                 : std::make_unique<httplib::Client>(host, port);
  // A request goes out in more than one write: without this, a kept-alive connection's next
  // request waits for the server's delayed ACK (40 ms).
  c->set_tcp_nodelay(true);
  if (!https) return c;
  c->enable_server_certificate_verification(true);
  if (!trust.ca_file.empty()) c->set_ca_cert_path(trust.ca_file);
  return c;
}

std::string DescribeError(const httplib::Client& client, httplib::Error error, const Trust& trust) {
  if (error == httplib::Error::SSLServerVerification) {
    return DescribeVerifyFailure(client.get_openssl_verify_result(), trust.ca_file);
  }
  return httplib::to_string(error);
}

}  // namespace tandem::tls
