#include "client/cli/wire.h"

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace retryd::cli {
namespace {

using google::protobuf::io::ArrayInputStream;
using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;
using google::protobuf::io::StringOutputStream;

constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32 = 5;

}  // namespace

bool ParseWireFields(const std::string& data, std::vector<WireField>* fields) {
  fields->clear();
  ArrayInputStream raw(data.data(), static_cast<int>(data.size()));
  CodedInputStream in(&raw);
  while (true) {
    if (in.CurrentPosition() == static_cast<int>(data.size())) return true;
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return false;  // a malformed varint or the invalid tag 0
    WireField field;
    field.number = static_cast<int>(tag >> 3);
    field.wire_type = static_cast<int>(tag & 7);
    if (field.number == 0) return false;
    switch (field.wire_type) {
      case kVarint:
        if (!in.ReadVarint64(&field.number_value)) return false;
        break;
      case kFixed64:
        if (!in.ReadLittleEndian64(&field.number_value)) return false;
        break;
      case kFixed32: {
        uint32_t value = 0;
        if (!in.ReadLittleEndian32(&value)) return false;
        field.number_value = value;
        break;
      }
      case kLengthDelimited: {
        uint32_t length = 0;
        if (!in.ReadVarint32(&length)) return false;
        if (!in.ReadString(&field.bytes_value, static_cast<int>(length))) return false;
        break;
      }
      default:
        return false;
    }
    fields->push_back(std::move(field));
  }
}

void AppendLengthDelimitedField(int number, const std::string& value, std::string* out) {
  StringOutputStream raw(out);
  CodedOutputStream coded(&raw);
  coded.WriteTag(static_cast<uint32_t>(number) << 3 | kLengthDelimited);
  coded.WriteVarint32(static_cast<uint32_t>(value.size()));
  coded.WriteString(value);
}

void AppendVarintField(int number, uint64_t value, std::string* out) {
  StringOutputStream raw(out);
  CodedOutputStream coded(&raw);
  coded.WriteTag(static_cast<uint32_t>(number) << 3 | kVarint);
  coded.WriteVarint64(value);
}

}  // namespace retryd::cli
