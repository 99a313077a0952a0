// Parsing scans the literal text for `{{`, `{%`, `{#` and `}}`, then tokenizes each expression up
// to the `}}` that closes it outside a quoted string, and resolves the tokens into one Part. All
// checks happen then, so rendering is one lookup per part.
#include "dag/template.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <utility>

namespace tandem::dag {
namespace {

struct Token {
  enum class Kind { kName, kString, kPunct, kEnd };  // kEnd: the closing `}}`
  Kind kind = Kind::kEnd;
  std::string text;   // the name, the string's contents, or the punctuation character
  size_t offset = 0;  // in the whole template text
};

constexpr std::array<std::string_view, 9> kConnectionFields = {
    "host", "port", "login", "password", "schema", "extra", "conn_type", "conn_id", "description"};

// "column 12", or "line 2, column 5" when the text has more than one line. Columns count
// characters, not bytes.
std::string Where(std::string_view text, size_t offset) {
  size_t line = 1;
  size_t column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      ++column;
    }
  }
  std::string where = "column " + std::to_string(column);
  if (text.find('\n') == std::string_view::npos) return where;
  return "line " + std::to_string(line) + ", " + where;
}

Status ErrorAt(std::string_view text, size_t offset, const std::string& what) {
  return InvalidArgument(Where(text, offset) + ": " + what);
}

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The tokens of the expression whose `{{` is at `open`, ending with the kEnd token of its `}}`.
Result<std::vector<Token>> Tokenize(std::string_view text, size_t open) {
  std::vector<Token> tokens;
  size_t i = open + 2;
  while (true) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size()) return ErrorAt(text, open, "'{{' is not closed by '}}'");
    char c = text[i];
    if (c == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      tokens.push_back({Token::Kind::kEnd, "}}", i});
      return tokens;
    }
    if (IsNameStart(c)) {
      size_t start = i;
      while (i < text.size() && IsNameChar(text[i])) ++i;
      tokens.push_back({Token::Kind::kName, std::string(text.substr(start, i - start)), start});
    } else if (c == '\'' || c == '"') {
      size_t close = text.find(c, i + 1);
      if (close == std::string_view::npos) return ErrorAt(text, i, "the string is not closed");
      tokens.push_back({Token::Kind::kString, std::string(text.substr(i + 1, close - i - 1)), i});
      i = close + 1;
    } else {
      // Punctuation, and anything else as one character (all of its UTF-8 bytes), so that the
      // reader can report the first problem in reading order.
      size_t n = 1;
      while (i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
      tokens.push_back({Token::Kind::kPunct, std::string(text.substr(i, n)), i});
      i += n;
    }
  }
}

std::string Describe(const Token& t) {
  switch (t.kind) {
    case Token::Kind::kEnd:
      return "the end of the expression";
    case Token::Kind::kString:
      return "the string '" + t.text + "'";
    case Token::Kind::kName:
    case Token::Kind::kPunct:
      break;
  }
  return "'" + t.text + "'";
}

// Reads one expression's tokens into a Part. A template over the part type because
// Template::Part is private: the caller, a member of Template, names it.
template <typename Part>
class ExpressionReader {
 public:
  using Kind = typename Part::Kind;

  ExpressionReader(std::string_view text, const TemplateScope& scope, std::vector<Token> tokens)
      : text_(text), scope_(scope), tokens_(std::move(tokens)) {}

  Result<Part> Read() {
    const Token& first = tokens_.front();
    if (first.kind == Token::Kind::kEnd) return Error(first, "the expression is empty");
    ASSIGN_OR_RETURN(std::string name, ExpectName("a name"));
    ASSIGN_OR_RETURN(Part part, ReadAfter(name, first));
    if (Peek().kind == Token::Kind::kPunct && Peek().text == "|") {
      return Error(Peek(), "filters ('|') are not supported");
    }
    if (Peek().kind != Token::Kind::kEnd) {
      return Error(Peek(), "unexpected " + Describe(Peek()) + " after the expression");
    }
    return part;
  }

 private:
  Result<Part> ReadAfter(const std::string& name, const Token& first) {
    static constexpr std::array<std::pair<std::string_view, Kind>, 6> kSimple = {{
        {"ds", Kind::kDs},
        {"ds_nodash", Kind::kDsNodash},
        {"logical_date", Kind::kLogicalDate},
        {"data_interval_start", Kind::kIntervalStart},
        {"data_interval_end", Kind::kIntervalEnd},
        {"run_id", Kind::kRunId},
    }};
    for (const auto& [simple, kind] : kSimple) {
      if (name == simple) return Part{kind, {}, {}};
    }
    if (name == "dag" || name == "task") {
      std::string want = name == "dag" ? "dag_id" : "task_id";
      RETURN_IF_ERROR(ExpectPunct('.'));
      const Token& at = Peek();
      ASSIGN_OR_RETURN(std::string attribute, ExpectName("'" + want + "'"));
      if (attribute != want) {
        return Error(at, "unknown name '" + name + "." + attribute + "' (only " + name + "." +
                             want + " is known)");
      }
      return Part{name == "dag" ? Kind::kDagId : Kind::kTaskId, {}, {}};
    }
    if (name == "params") {
      RETURN_IF_ERROR(ExpectPunct('.'));
      const Token& at = Peek();
      ASSIGN_OR_RETURN(std::string param, ExpectName("a param name"));
      if (!scope_.params.contains(param)) {
        return Error(at, "unknown param '" + param + "' (" +
                             (scope_.params.empty() ? "the DAG declares no params"
                                                    : "the DAG's params: " + Join(scope_.params)) +
                             ")");
      }
      return Part{Kind::kParam, param, {}};
    }
    if (name == "var") {
      RETURN_IF_ERROR(ExpectPunct('.'));
      const Token& at = Peek();
      ASSIGN_OR_RETURN(std::string value, ExpectName("'value'"));
      if (value != "value") {
        return Error(at, "unknown name 'var." + value + "' (only var.value.NAME is known)");
      }
      RETURN_IF_ERROR(ExpectPunct('.'));
      ASSIGN_OR_RETURN(std::string key, ExpectName("a variable name"));
      return Part{Kind::kVariable, key, {}};
    }
    if (name == "conn") {
      RETURN_IF_ERROR(ExpectPunct('.'));
      ASSIGN_OR_RETURN(std::string conn_id, ExpectName("a connection id"));
      RETURN_IF_ERROR(ExpectPunct('.'));
      const Token& at = Peek();
      ASSIGN_OR_RETURN(std::string field, ExpectName("a connection field"));
      if (std::find(kConnectionFields.begin(), kConnectionFields.end(), field) ==
          kConnectionFields.end()) {
        return Error(at, "unknown connection field '" + field +
                             "' (known: host, port, login, password, schema, extra, conn_type, "
                             "conn_id, description)");
      }
      return Part{Kind::kConnection, conn_id, field};
    }
    if (name == "ti") return ReadXcomPull();
    return Error(first, "unknown name '" + name + "'");
  }

  // After `ti`: .xcom_pull(task_ids='ID'[, key='KEY']), keywords in either order.
  Result<Part> ReadXcomPull() {
    RETURN_IF_ERROR(ExpectPunct('.'));
    const Token& at = Peek();
    ASSIGN_OR_RETURN(std::string method, ExpectName("'xcom_pull'"));
    if (method != "xcom_pull") {
      return Error(at, "unknown name 'ti." + method + "' (only ti.xcom_pull is known)");
    }
    RETURN_IF_ERROR(ExpectPunct('('));
    std::optional<std::string> task_id;
    std::optional<std::string> key;
    const Token* task_token = nullptr;
    while (true) {
      const Token& arg = Peek();
      if (arg.kind != Token::Kind::kName || (arg.text != "task_ids" && arg.text != "key")) {
        return Error(
            arg, "xcom_pull takes task_ids='ID' and optionally key='KEY', not " + Describe(arg));
      }
      std::optional<std::string>& slot = arg.text == "key" ? key : task_id;
      if (slot) return Error(arg, "'" + arg.text + "' is given twice");
      ++pos_;
      RETURN_IF_ERROR(ExpectPunct('='));
      const Token& value = Peek();
      if (value.kind != Token::Kind::kString) {
        return Error(value, "expected a quoted string, found " + Describe(value));
      }
      ++pos_;
      slot = value.text;
      if (&slot == &task_id) task_token = &value;
      if (Peek().kind == Token::Kind::kPunct && Peek().text == ",") {
        ++pos_;
        continue;
      }
      RETURN_IF_ERROR(ExpectPunct(')'));
      break;
    }
    if (!task_id) return Error(at, "xcom_pull needs task_ids='ID'");
    if (!scope_.task_ids.contains(*task_id)) {
      return Error(*task_token, "xcom_pull names task '" + *task_id + "', which this DAG has not");
    }
    return Part{Kind::kXcom, *task_id, key.value_or("return_value")};
  }

  const Token& Peek() const { return tokens_[pos_]; }

  Result<std::string> ExpectName(const std::string& what) {
    const Token& t = Peek();
    if (t.kind != Token::Kind::kName) {
      return Error(t, "expected " + what + ", found " + Describe(t));
    }
    ++pos_;
    return t.text;
  }

  Status ExpectPunct(char c) {
    const Token& t = Peek();
    if (t.kind != Token::Kind::kPunct || t.text != std::string(1, c)) {
      return Error(t, "expected '" + std::string(1, c) + "', found " + Describe(t));
    }
    ++pos_;
    return Status::Ok();
  }

  Status Error(const Token& t, const std::string& what) const {
    return ErrorAt(text_, t.offset, what);
  }

  static std::string Join(const std::set<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  }

  std::string_view text_;
  const TemplateScope& scope_;
  std::vector<Token> tokens_;  // ends with a kEnd token, so Peek never runs past it
  size_t pos_ = 0;
};

// The value under `key`, or "<what> 'key' <missing>" as an error.
Result<const std::string*> Lookup(const std::map<std::string, std::string>& values,
                                  const std::string& key, std::string_view what,
                                  std::string_view missing) {
  auto it = values.find(key);
  if (it == values.end()) {
    return InvalidArgument(std::string(what) + " '" + key + "' " + std::string(missing));
  }
  return &it->second;
}

// "YYYY-MM-DD" of `t`.
std::string Date(TimePoint t) { return FormatTime(t).substr(0, 10); }

}  // namespace

Result<Template> Template::Parse(std::string_view text, const TemplateScope& scope) {
  Template out;
  out.text_ = std::string(text);
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) out.parts_.push_back({Part::Kind::kLiteral, std::move(literal), {}});
    literal.clear();
  };
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (c == '{' && next == '%') {
      return ErrorAt(text, i, "blocks ('{%') are not supported, only {{ expressions }}");
    }
    if (c == '{' && next == '#') {
      return ErrorAt(text, i, "comments ('{#') are not supported, only {{ expressions }}");
    }
    if (c == '}' && next == '}') {
      return ErrorAt(text, i, "'}}' without an opening '{{'");
    }
    if (c != '{' || next != '{') {
      literal += c;
      ++i;
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(text, i));
    size_t close = tokens.back().offset;
    ASSIGN_OR_RETURN(Part part, ExpressionReader<Part>(text, scope, std::move(tokens)).Read());
    switch (part.kind) {
      case Part::Kind::kVariable:
        out.variables_.insert(part.a);
        break;
      case Part::Kind::kConnection:
        out.connections_.insert(part.a);
        break;
      case Part::Kind::kXcom:
        out.xcoms_.insert({part.a, part.b});
        break;
      default:
        break;
    }
    flush();
    out.parts_.push_back(std::move(part));
    i = close + 2;
  }
  flush();
  return out;
}

Result<std::string> Template::Render(const TemplateContext& context) const {
  std::string out;
  for (const Part& part : parts_) {
    switch (part.kind) {
      case Part::Kind::kLiteral:
        out += part.a;
        break;
      case Part::Kind::kDs:
        out += Date(context.logical_date);
        break;
      case Part::Kind::kDsNodash: {
        std::string ds = Date(context.logical_date);
        ds.erase(std::remove(ds.begin(), ds.end(), '-'), ds.end());
        out += ds;
        break;
      }
      case Part::Kind::kLogicalDate:
        out += FormatTime(context.logical_date);
        break;
      case Part::Kind::kIntervalStart:
        out += FormatTime(context.data_interval_start);
        break;
      case Part::Kind::kIntervalEnd:
        out += FormatTime(context.data_interval_end);
        break;
      case Part::Kind::kRunId:
        out += context.run_id;
        break;
      case Part::Kind::kDagId:
        out += context.dag_id;
        break;
      case Part::Kind::kTaskId:
        out += context.task_id;
        break;
      case Part::Kind::kParam: {
        ASSIGN_OR_RETURN(const std::string* value,
                         Lookup(context.params, part.a, "param", "has no value"));
        out += *value;
        break;
      }
      case Part::Kind::kVariable: {
        ASSIGN_OR_RETURN(const std::string* value,
                         Lookup(context.variables, part.a, "variable", "does not exist"));
        out += *value;
        break;
      }
      case Part::Kind::kConnection: {
        auto conn = context.connections.find(part.a);
        if (conn == context.connections.end()) {
          return InvalidArgument("connection '" + part.a + "' does not exist");
        }
        auto field = conn->second.fields.find(part.b);
        out += field == conn->second.fields.end() ? "None" : field->second;
        break;
      }
      case Part::Kind::kXcom: {
        auto it = context.xcoms.find({part.a, part.b});
        out += it == context.xcoms.end() ? "None" : it->second;
        break;
      }
    }
  }
  return out;
}

bool Template::has_expressions() const {
  return std::any_of(parts_.begin(), parts_.end(),
                     [](const Part& p) { return p.kind != Part::Kind::kLiteral; });
}

}  // namespace tandem::dag
